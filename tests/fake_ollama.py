"""A fake Ollama node for tests and benchmarks: the far end of the router's request flow.

It answers the native API (`/`, `/api/version|tags|ps|show|chat|generate|embed|embeddings`) field for field like
Ollama 0.12 (shapes checked against Ollama's `api/types.go` and `server/routes.go`), served by hypercorn's trio
worker on 127.0.0.1:0. Replies are canned words, one NDJSON chunk per word; knobs inject failures and the counters
let a test see what the router did upstream. Importable without pytest: `bench/` uses it too.
Known deviation: chat with empty `messages` answers normally (Ollama would only load the model, done_reason
"load"); generate with an empty prompt does behave like Ollama ("load", or "unload" with keep_alive 0).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
JSON_CT = b"application/json; charset=utf-8"
THINKING = "The user greets me, so I will greet them back."
ROUTES = {"/": "GET HEAD", "/api/version": "GET HEAD", "/api/tags": "GET HEAD", "/api/ps": "GET"}
POSTS = ("/api/show", "/api/chat", "/api/generate", "/api/embed", "/api/embeddings")
MESSAGE = {"role": "string", "content": "string", "thinking": "string", "images": "[]api.ImageData"}
MESSAGE |= {"tool_calls": "[]api.ToolCall", "tool_name": "string"}
COMMON = {"model": "string", "stream": "bool", "options": "map[string]interface {}", "think": "think"}
COMMON |= {"keep_alive": "duration"}
CHAT = COMMON | {"messages": "[]api.Message", "tools": "api.Tools"}
GENERATE = COMMON | {"prompt": "string", "suffix": "string", "system": "string", "template": "string"}
GENERATE |= {"context": "[]int", "raw": "bool", "images": "[]api.ImageData"}
SCHEMAS = {"/api/chat": ("ChatRequest", CHAT), "/api/generate": ("GenerateRequest", GENERATE)}
SCHEMAS |= {"/api/show": ("ShowRequest", {"model": "string", "name": "string", "verbose": "bool"})}
SCHEMAS |= {"/api/embed": ("EmbedRequest", {"model": "string", "truncate": "bool", "keep_alive": "duration"})}
SCHEMAS |= {"/api/embeddings": ("EmbeddingRequest", {"model": "string", "prompt": "string"})}
GO_SYNTAX = {
    "Expecting property name": "looking for beginning of object key string",
    "Expecting ':'": "after ",
}
GO_SYNTAX |= {"Expecting ','": "after object key:value pair"}
DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class FakeModel:
    """One model on the fake node's disk."""

    name: str
    size: int = 2_000_000_000
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    capabilities: tuple[str, ...] = ("completion", "tools")
    context_length: int = 4096

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        return {"parent_model": "", "format": "gguf", "family": self.family, "families": [self.family]} | {
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }


def rfc3339(ns: int, *, local: bool = False) -> str:
    """Go's time.RFC3339Nano: trailing zeros of the fraction trimmed, "Z" for a zero offset."""
    secs, frac = divmod(ns, 1_000_000_000)
    dt = datetime.fromtimestamp(secs).astimezone() if local else datetime.fromtimestamp(secs, UTC)
    offset = int(dt.utcoffset().total_seconds()) // 60  # type: ignore[union-attr]
    zone = (
        "Z" if not offset else f"{'+' if offset > 0 else '-'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    )
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac:09d}".rstrip("0") if frac else "") + zone


def keep_alive_seconds(value: Any) -> float:
    """Ollama's api.Duration: seconds as a number or a Go duration string; negative means forever."""
    if value is None:
        return 300.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float("inf") if value < 0 else float(value)
    if isinstance(value, str):
        sign, rest = (-1.0, value[1:]) if value.startswith("-") else (1.0, value.removeprefix("+"))
        parts = DURATION.findall(rest)
        if rest == "0":
            return 0.0
        if rest and "".join(n + u for n, u in parts) == rest:
            total = sign * sum(float(n) * UNITS[u] for n, u in parts)
            return float("inf") if total < 0 else total
        raise ApiError(400, f'time: invalid duration "{value}"')
    raise ApiError(400, f"Unsupported type: '{_go_kind(value, dynamic=True)}'")


def _go_kind(value: Any, *, dynamic: bool = False) -> str:
    kinds = {bool: "bool", str: "string", int: "number", float: "number", list: "array", dict: "object"}
    if dynamic:
        kinds = {bool: "bool", list: "[]interface {}", dict: "map[string]interface {}"}
    return kinds.get(type(value), "number")


def _check(obj: dict[str, Any], fields: dict[str, str], struct: str, prefix: str = "") -> None:
    """Reject wrong JSON types the way Go's encoding/json does; null is always fine (zero value)."""
    for key, gotype in fields.items():
        value = obj.get(key)
        if value is None:
            continue
        if gotype == "duration":
            keep_alive_seconds(value)
            continue
        if gotype == "think":
            if isinstance(value, str) and value not in ("high", "medium", "low"):
                raise ApiError(
                    400, f'invalid think value: "{value}" (must be "high", "medium", "low", true, or false)'
                )
            if not isinstance(value, bool | str):
                raise ApiError(400, 'think must be a boolean or string ("high", "medium", "low")')
            continue
        items = [(value, gotype)]
        if gotype.startswith("[]") and isinstance(value, list):
            items += [(item, gotype[2:]) for item in value]
        for item, want in items:
            expected = {"string": "string", "bool": "bool", "int": "number", "api.ImageData": "string"}.get(
                want
            )
            expected = expected or ("array" if want.startswith("[]") or want == "api.Tools" else "object")
            if _go_kind(item) != expected:
                raise ApiError(
                    400,
                    f"json: cannot unmarshal {_go_kind(item)} into Go struct field {struct}.{prefix}{key} of type {want}",
                )
            if want == "api.Message":
                _check(item, MESSAGE, struct, f"{prefix}{key}.")


def decode(raw: bytes, path: str) -> dict[str, Any]:
    """Decode and type-check a request body like gin's ShouldBindJSON (first JSON value only, Go's messages)."""
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        raise ApiError(400, "missing request body")
    try:
        body, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as err:
        if err.pos >= len(text):
            raise ApiError(400, "unexpected EOF") from None
        where = next(
            (v for k, v in GO_SYNTAX.items() if err.msg.startswith(k)), "looking for beginning of value"
        )
        raise ApiError(400, f"invalid character {text[err.pos]!r} {where}") from None
    struct, fields = SCHEMAS[path]
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, f"json: cannot unmarshal {_go_kind(body)} into Go value of type api.{struct}")
    _check(body, fields, struct)
    return body


def _full_name(name: str) -> str:
    return "registry.ollama.ai/" + (name if "/" in name else "library/" + name)


def _tokens(text: str) -> int:
    return max(1, round(len(text.split()) * 1.3))


class FakeOllama:
    """The fake node. `await nursery.start(fake.run)` returns its URL; the knobs below may change at any time."""

    def __init__(
        self,
        models: list[FakeModel] | list[str],
        *,
        loaded: Iterable[str] = (),
        version: str = "0.12.3",
        reply: str = "Hello from the fake node!",
        chunk_delay: float = 0.0,
        num_chunks: int | None = None,
    ) -> None:
        self.models = {
            self.norm(m.name): m for m in (FakeModel(m) if isinstance(m, str) else m for m in models)
        }
        self.loaded: list[str] = [self.models[self.norm(n)].name for n in loaded]
        self.version, self.reply, self.chunk_delay, self.num_chunks = version, reply, chunk_delay, num_chunks
        self.url = ""
        self.fail_next: list[tuple[int, str]] = []
        self.fail_after_chunks: int | None = None
        self.stall_after_chunks: int | None = None
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.active_streams = self.cancelled_streams = self.completed_streams = 0
        self._expires: dict[str, float] = {}
        self._modified_ns = time.time_ns() - 3 * 86_400 * 10**9  # "pulled three days ago"

    @staticmethod
    def norm(name: str) -> str:
        name = name.strip().lower()
        return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"

    def model_specs(self) -> list[FakeModel]:
        return list(self.models.values())

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.loglevel = "WARNING"
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, self, config)  # type: ignore[arg-type]
            self.url = binds[0]
            task_status.started(self.url)

    # ------------------------------------------------------------------------------------------ ASGI plumbing
    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raw = b""
        while (msg := await receive())["type"] == "http.request":
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        else:
            return  # client left before sending the whole body
        path, method = scope["path"], scope["method"]
        allowed = ROUTES.get(path, "POST" if path in POSTS else "")
        if method not in allowed.split():
            code = 405 if allowed else 404
            text = "405 method not allowed" if allowed else "404 page not found"
            return await self._send(send, code, text.encode(), b"text/plain")
        try:
            if method != "POST":
                return await self._get(send, path)
            try:
                req = decode(raw, path)
            except ApiError:
                self.requests.append((path, {}))
                raise
            self.requests.append((path, req))
            await self._post(path, req, receive, send)
        except ApiError as err:
            await self._json(send, err.status, {"error": err.message})

    @staticmethod
    async def _send(send: Send, status: int, body: bytes, ctype: bytes) -> None:
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _json(self, send: Send, status: int, obj: Any) -> None:
        await self._send(send, status, json.dumps(obj, separators=(",", ":")).encode(), JSON_CT)

    # ------------------------------------------------------------------------------------------ routes
    async def _get(self, send: Send, path: str) -> None:
        if path == "/":
            return await self._send(send, 200, b"Ollama is running", b"text/plain; charset=utf-8")
        if path == "/api/version":
            return await self._json(send, 200, {"version": self.version})
        if path == "/api/tags":
            modified = rfc3339(self._modified_ns, local=True)
            return await self._json(
                send, 200, {"models": [self._tag(m, modified) for m in self.models.values()]}
            )
        now = time.time()
        expiry = {n: self._expires.get(n, now + 300) for n in self.loaded}
        ps = [self._ps(self.models[self.norm(n)], e) for n, e in sorted(expiry.items(), key=lambda x: -x[1])]
        await self._json(send, 200, {"models": ps})

    @staticmethod
    def _tag(m: FakeModel, modified: str) -> dict[str, Any]:
        entry = {"name": m.name, "model": m.name, "modified_at": modified, "size": m.size, "digest": m.digest}
        return entry | {"details": m.details(), "capabilities": list(m.capabilities)}

    @staticmethod
    def _ps(m: FakeModel, expires: float) -> dict[str, Any]:
        stamp = rfc3339(int(min(expires, 10_000_000_000) * 1e9), local=True)
        entry = {"name": m.name, "model": m.name, "size": m.size, "digest": m.digest, "details": m.details()}
        return entry | {"expires_at": stamp, "size_vram": m.size, "context_length": m.context_length}

    def _model(self, name: str, status: int = 404) -> FakeModel:
        model = self.models.get(self.norm(name)) if name else None
        if model is None:
            raise ApiError(status, f"model '{name}' not found")
        return model

    async def _post(self, path: str, req: dict[str, Any], receive: Receive, send: Send) -> None:
        name = req.get("model") or ""
        if path == "/api/show":
            if not name and not req.get("name"):
                raise ApiError(400, "model is required")
            return await self._json(send, 200, self._show(self._model(name or req["name"])))
        if path in ("/api/embed", "/api/embeddings"):
            return await self._embed(path, self._model(name), req, send)
        if path == "/api/chat" and not name:
            raise ApiError(400, "model is required")
        if self.fail_next:
            raise ApiError(*self.fail_next.pop(0))
        model = self._model(name)
        chat, keep = path == "/api/chat", keep_alive_seconds(req.get("keep_alive"))
        think = bool(req.get("think"))
        wanted = {"completion": True, "tools": bool(chat and req.get("tools")), "thinking": think}
        if missing := [c for c, on in wanted.items() if on and c not in model.capabilities]:
            if "completion" in missing:
                raise ApiError(400, f'"{name}" does not support {"chat" if chat else "generate"}')
            raise ApiError(400, f"{_full_name(model.name)} does not support {' '.join(missing)}")
        cold = model.name not in self.loaded
        if cold:
            self.loaded.append(model.name)
        self._expires[model.name] = time.time() + keep
        head = {"model": name, "created_at": ""}
        if not chat and not req.get("prompt"):
            if keep == 0:
                self.loaded.remove(model.name)
            reason = "unload" if keep == 0 else "load"
            return await self._json(send, 200, head | {"response": "", "done": True, "done_reason": reason})
        try:
            await self._generate(req, chat, cold, head, receive, send)
        finally:
            if keep == 0 and model.name in self.loaded:
                self.loaded.remove(model.name)

    def _show(self, m: FakeModel) -> dict[str, Any]:
        template = "{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}<|assistant|>{{ .Response }}"
        params = f"{'stop':<30} {json.dumps('<|eot_id|>')}"
        modelfile = f'# Modelfile generated by "ollama show"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM {m.name}\n\n'
        modelfile += f'FROM /root/.ollama/models/blobs/sha256-{m.digest}\nTEMPLATE """{template}"""\nPARAMETER {params}\n'
        count = int(float(m.parameter_size.rstrip("BM")) * (1e9 if m.parameter_size.endswith("B") else 1e6))
        info = {"general.architecture": m.family, "general.parameter_count": count, "general.file_type": 15}
        info |= {f"{m.family}.context_length": m.context_length, f"{m.family}.embedding_length": 3072}
        out = {
            "license": "Fake license text.",
            "modelfile": modelfile,
            "parameters": params,
            "template": template,
        }
        out |= {"details": m.details(), "model_info": info, "capabilities": list(m.capabilities)}
        return out | {"modified_at": rfc3339(self._modified_ns, local=True)}

    async def _embed(self, path: str, m: FakeModel, req: dict[str, Any], send: Send) -> None:
        def vector(text: str) -> list[float]:
            raw = [(b - 127.5) / 127.5 for b in hashlib.sha256(text.encode()).digest()[:8]]
            norm = sum(x * x for x in raw) ** 0.5 or 1.0
            return [round(x / norm, 6) for x in raw]

        if m.name not in self.loaded:
            self.loaded.append(m.name)
        if path == "/api/embeddings":
            prompt = req.get("prompt")
            return await self._json(send, 200, {"embedding": vector(prompt) if prompt else []})
        inputs = req.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs if isinstance(inputs, list) else []
        if not all(isinstance(t, str) for t in texts):
            raise ApiError(400, "invalid input type")
        out = {"model": req["model"], "embeddings": [vector(t) for t in texts], "total_duration": 14_000_000}
        await self._json(
            send, 200, out | {"load_duration": 1_000_000, "prompt_eval_count": sum(map(_tokens, texts))}
        )

    # ------------------------------------------------------------------------------------------ generation
    def _plan(self, req: dict[str, Any], chat: bool) -> tuple[list[dict[str, Any]], str, int]:
        """The chunks' payloads (without model/created_at), done_reason and eval_count."""
        words = self.reply.split(" ")
        n = self.num_chunks if self.num_chunks is not None else len(words)
        limit = (req.get("options") or {}).get("num_predict")
        reason = "stop"
        if isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < n:
            n, reason = limit, "length"
        pieces = [("" if i == 0 else " ") + words[i % len(words)] for i in range(n)]
        thoughts = (
            [("" if i == 0 else " ") + w for i, w in enumerate(THINKING.split())] if req.get("think") else []
        )
        messages = req.get("messages") or []
        last_user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
        if chat and req.get("tools") and "weather" in last_user.lower():
            name = req["tools"][0].get("function", {}).get("name", "")
            call = {"function": {"name": name, "arguments": {"location": "Paris"}}}
            return (
                [*(self._piece(chat, "", t) for t in thoughts), self._piece(chat, "", "", [call])],
                "stop",
                12,
            )
        chunks = [self._piece(chat, "", t) for t in thoughts] + [self._piece(chat, p) for p in pieces]
        return chunks, reason, len(chunks)

    @staticmethod
    def _piece(
        chat: bool, content: str, thinking: str = "", calls: list[Any] | None = None
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": content} if chat else {"response": content}
        msg |= ({"thinking": thinking} if thinking else {}) | ({"tool_calls": calls} if calls else {})
        return {"message": msg, "done": False} if chat else msg | {"done": False}

    def _final(self, req: dict[str, Any], chat: bool, cold: bool, reason: str, evals: int) -> dict[str, Any]:
        if chat:
            prompt = sum(_tokens(m.get("content") or "") + 5 for m in req.get("messages") or [])
        else:
            prompt = _tokens(req.get("prompt") or "") + 10
        load = 1_523_456_789 if cold else 18_345_678
        evals_ns = evals * int(max(self.chunk_delay, 0.02) * 1e9)
        out: dict[str, Any] = {"done": True, "done_reason": reason}
        out |= {} if chat else {"context": [128006 + (i * 7919) % 100_000 for i in range(prompt + evals)]}
        out |= {"total_duration": load + prompt * 400_000 + evals_ns + 2_345_678, "load_duration": load}
        out |= {"prompt_eval_count": prompt, "prompt_eval_duration": prompt * 400_000}
        return out | {"eval_count": evals, "eval_duration": evals_ns}

    async def _generate(
        self, req: dict[str, Any], chat: bool, cold: bool, head: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        """Send the reply (a stream, or one JSON at the end) while watching for the client going away."""
        chunks, reason, evals = self._plan(req, chat)
        stream = req.get("stream") is not False
        final = self._final(req, chat, cold, reason, evals)
        if not chat:
            final = {"response": ""} | final
        else:
            final = {"message": {"role": "assistant", "content": ""}} | final
        self.active_streams += 1
        gone = finished = False
        try:
            async with trio.open_nursery() as nursery:

                async def watch() -> None:
                    nonlocal gone
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    gone = True
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch)
                try:
                    finished = await self._emit(send, stream, chunks, head, final)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                    gone = True
                nursery.cancel_scope.cancel()
        finally:
            self.active_streams -= 1
            self.completed_streams += finished
            self.cancelled_streams += gone and not finished

    async def _emit(
        self,
        send: Send,
        stream: bool,
        chunks: list[dict[str, Any]],
        head: dict[str, Any],
        final: dict[str, Any],
    ) -> bool:
        if stream:
            headers = [(b"content-type", b"application/x-ndjson")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
        sent: list[dict[str, Any]] = []
        for chunk in [*chunks, None]:
            if self.fail_after_chunks is not None and len(sent) >= self.fail_after_chunks:
                return False  # returning mid-body makes hypercorn drop the connection: a cut stream
            if self.stall_after_chunks is not None and len(sent) >= self.stall_after_chunks:
                await trio.sleep_forever()
            if chunk is None:
                break
            if self.chunk_delay:
                await trio.sleep(self.chunk_delay)
            sent.append(chunk)
            if stream:
                line = head | {"created_at": rfc3339(time.time_ns())} | chunk
                await send({"type": "http.response.body", "body": _line(line), "more_body": True})
        last = head | {"created_at": rfc3339(time.time_ns())} | final
        if stream:
            await send({"type": "http.response.body", "body": _line(last)})
            return True
        key = "message" if "message" in final else None
        whole = _merge([c["message"] if key else c for c in sent], chat=key is not None)
        await self._json(send, 200, last | ({"message": whole} if key else whole))
        return True


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _merge(parts: list[dict[str, Any]], *, chat: bool) -> dict[str, Any]:
    """Ollama's non-stream aggregation: concatenated content and thinking, collected tool calls."""
    text_key = "content" if chat else "response"
    out: dict[str, Any] = {"role": "assistant"} if chat else {}
    out[text_key] = "".join(p.get(text_key, "") for p in parts)
    if thinking := "".join(p.get("thinking", "") for p in parts):
        out["thinking"] = thinking
    if calls := [c for p in parts for c in p.get("tool_calls", [])]:
        out["tool_calls"] = calls
    return out

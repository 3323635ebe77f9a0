"""A fake Ollama node for tests and benchmarks: the far end of the router's request flow.

A raw ASGI app served by hypercorn's trio worker on 127.0.0.1:0. It answers `/`, `/api/version|tags|
ps|show|chat|generate|embed|embeddings` field for field like Ollama 0.12 (the pure wire format is in
bench/ollama_wire.py), and model management: pull, copy, delete, create (new form: `from` a model, or
`files`/`adapters` naming uploaded blobs), push, and `HEAD`/`POST /api/blobs/:digest` (201 when the body's
sha256 matches, 200 if already there, 400 on a mismatch; HEAD 200/404). Replies are canned words, one NDJSON chunk per word; knobs inject failures and
counters show what the router did upstream. Importable without pytest (bench/fake_node.py runs it).
Known deviation: chat with empty `messages` answers normally (Ollama would only load the model,
done_reason "load"); generate with an empty prompt behaves like Ollama ("load"; "unload" if keep_alive 0).
"""

from __future__ import annotations

import hashlib
import random
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import trio

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # the repo root, for `bench`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fake_server import FakeServer, Message, Receive, Send

from bench.ollama_wire import (
    ApiError,
    Body,
    FakeModel,
    capability_error,
    decode,
    dumps,
    embed_body,
    final_body,
    keep_alive_seconds,
    merge,
    norm,
    plan_reply,
    prompt_tokens,
    ps_entry,
    rfc3339,
    show_body,
    tag_entry,
)

__all__ = ["ApiError", "FakeModel", "FakeOllama", "keep_alive_seconds", "rfc3339"]

JSON_CT = b"application/json; charset=utf-8"
ROUTES = {"/": "GET HEAD", "/api/version": "GET HEAD", "/api/tags": "GET HEAD", "/api/ps": "GET"}
ROUTES |= dict.fromkeys(("/api/show", "/api/chat", "/api/generate", "/api/embed", "/api/embeddings"), "POST")
ROUTES |= {"/api/pull": "POST", "/api/copy": "POST", "/api/delete": "DELETE"}
ROUTES |= {"/api/create": "POST", "/api/push": "POST"}
DIGEST = re.compile(r"sha256[:-][0-9a-f]{64}")
BLOBS_DIR = "/root/.ollama/models/blobs"


def response(status: int, body: bytes, ctype: bytes = JSON_CT) -> list[Message]:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class FakeOllama(FakeServer):
    """The fake node. `await nursery.start(fake.run)` returns its URL; the knobs may change at any time.

    Knobs: `fail_next` (popped one per chat/generate: that status + {"error": msg}), `fail_after_chunks`
    (cut the connection after N chunks, no done chunk; non-stream: a bare 500), `stall_after_chunks` (go
    silent after N chunks), `prompt_delay` (seconds per prompt token, spent before the first chunk and reported
    as prompt_eval_duration), `load_delay` (seconds a cold load takes, spent and reported as load_duration);
    eval_duration reports `chunk_delay` per token; `flaky` (a share of chat/generate requests fail, drawn from a
    seeded `rng`: `flaky_mode` "500" answers HTTP 500, "cut" cuts after `flaky_cut_after` chunks). Observations: `requests` [(path, body)], `loaded` (names, like /api/ps),
    `active_streams`, `cancelled_streams` (the client went away first), `completed_streams` (counted
    before the last byte leaves, so a client that has read the whole reply sees it).
    """

    def __init__(
        self,
        models: list[FakeModel] | list[str],
        *,
        loaded: Iterable[str] = (),
        version: str = "0.12.3",
        reply: str = "Hello from the fake node!",
        chunk_delay: float = 0.0,
        num_chunks: int | None = None,
        prompt_delay: float = 0.0,
        load_delay: float = 0.0,
    ) -> None:
        specs = [FakeModel(m) if isinstance(m, str) else m for m in models]
        self.models = {norm(m.name): m for m in specs}
        self.loaded: list[str] = [self.models[norm(n)].name for n in loaded]
        self.version, self.reply, self.chunk_delay, self.num_chunks = version, reply, chunk_delay, num_chunks
        self.prompt_delay, self.load_delay = prompt_delay, load_delay
        self.url = ""
        self.bind = "127.0.0.1:0"  # where `run` listens; tests keep the free-port default
        self.fail_next: list[tuple[int, str]] = []
        self.fail_pull: tuple[int, str] | None = None  # every /api/pull answers this status + {"error": msg}
        self.fail_after_chunks: int | None = None
        self.stall_after_chunks: int | None = None
        self.flaky, self.flaky_mode, self.flaky_cut_after = 0.0, "500", 0
        self.rng = random.Random(0)
        self.failed = 0  # requests the flaky knob failed
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.blobs: dict[str, int] = {}  # uploaded blobs: digest -> size (like ~/.ollama/models/blobs)
        self.pushed: list[str] = []
        self.active_streams = self.cancelled_streams = self.completed_streams = 0
        self._expires: dict[str, float] = {}
        self._modified = rfc3339(time.time_ns() - 3 * 86_400 * 10**9, local=True)  # "pulled 3 days ago"

    def model_specs(self) -> list[FakeModel]:
        return list(self.models.values())

    async def handle(self, scope: Message, raw: bytes, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path.startswith("/api/blobs/"):
            return await self._blob(method, path.removeprefix("/api/blobs/"), raw, send)
        allowed = ROUTES.get(path, "")
        if method not in allowed.split():
            text = b"405 method not allowed" if allowed else b"404 page not found"
            return await _send(send, response(405 if allowed else 404, text, b"text/plain"))
        try:
            if method in ("GET", "HEAD"):
                return await _send(send, self._get(path))
            try:
                req = decode(raw, path)
            except ApiError:
                self.requests.append((path, {}))
                raise
            self.requests.append((path, req))
            await self._post(path, req, receive, send)
        except ApiError as err:
            await _send(send, response(err.status, dumps({"error": err.message})))

    def _get(self, path: str) -> list[Message]:
        if path == "/":
            return response(200, b"Ollama is running", b"text/plain; charset=utf-8")
        if path == "/api/version":
            return response(200, dumps({"version": self.version}))
        if path == "/api/tags":
            return response(
                200, dumps({"models": [tag_entry(m, self._modified) for m in self.models.values()]})
            )
        expiry = {n: self._expires.get(n, time.time() + 300) for n in self.loaded}
        ps = [ps_entry(self.models[norm(n)], e) for n, e in sorted(expiry.items(), key=lambda x: -x[1])]
        return response(200, dumps({"models": ps}))

    def _model(self, name: str) -> FakeModel:
        model = self.models.get(norm(name)) if name else None
        if model is None:
            raise ApiError(404, f"model '{name}' not found")
        return model

    def _load(self, model: FakeModel, keep: float) -> bool:
        cold = model.name not in self.loaded
        if cold:
            self.loaded.append(model.name)
        self._expires[model.name] = time.time() + keep
        return cold

    async def _post(self, path: str, req: Body, receive: Receive, send: Send) -> None:
        name = req.get("model") or ""
        if path == "/api/show":
            if not name and not req.get("name"):
                raise ApiError(400, "model is required")
            return await _send(
                send, response(200, dumps(show_body(self._model(name or req["name"]), self._modified)))
            )
        if path in ("/api/pull", "/api/delete", "/api/copy"):
            return await self._manage(path, req, send)
        if path == "/api/create":
            return await self._progress(send, self._create(req), req.get("stream") is not False)
        if path == "/api/push":
            return await self._progress(send, self._push(req), req.get("stream") is not False)
        if path in ("/api/embed", "/api/embeddings"):
            self._load(self._model(name), keep_alive_seconds(req.get("keep_alive")))
            return await _send(send, response(200, dumps(embed_body(req, path == "/api/embeddings"))))
        chat = path == "/api/chat"
        if chat and not name:
            raise ApiError(400, "model is required")
        if self.fail_next:
            raise ApiError(*self.fail_next.pop(0))
        cut_after = self.fail_after_chunks
        if self.flaky and self.rng.random() < self.flaky:
            self.failed += 1
            if self.flaky_mode == "500":
                raise ApiError(500, "fake node failure")
            cut_after = self.flaky_cut_after
        model = self._model(name)
        if refused := capability_error(model, req, chat):
            raise refused
        keep = keep_alive_seconds(req.get("keep_alive"))
        cold = self._load(model, keep)
        if not chat and not req.get("prompt"):
            if keep == 0:
                self.loaded.remove(model.name)
            body = {"model": name, "created_at": rfc3339(time.time_ns()), "response": "", "done": True}
            return await _send(
                send, response(200, dumps(body | {"done_reason": "unload" if keep == 0 else "load"}))
            )
        await self._generate(req, chat, cold, receive, send, model.name if keep == 0 else None, cut_after)

    async def _manage(self, path: str, req: Body, send: Send) -> None:
        """Model management like Ollama's: pull streams progress and adds the model; delete and copy."""
        if path == "/api/delete":
            model = self._model(req.get("model") or req.get("name") or "")
            del self.models[norm(model.name)]
            return await _send(send, response(200, b""))
        if path == "/api/copy":
            source = self._model(req.get("source") or "")
            dest = FakeModel(req.get("destination") or "", size=source.size, family=source.family)
            self.models[norm(dest.name)] = dest
            return await _send(send, response(200, b""))
        if self.fail_pull is not None:
            raise ApiError(*self.fail_pull)
        name = req.get("model") or req.get("name") or ""
        digest = "sha256:" + "ab" * 32
        steps: list[Body] = [{"status": "pulling manifest"}]
        steps += [
            {"status": f"pulling {digest[7:19]}", "digest": digest, "total": 400, "completed": c}
            for c in (0, 200, 400)
        ]
        steps += [
            {"status": "verifying sha256 digest"},
            {"status": "writing manifest"},
            {"status": "success"},
        ]
        self.models[norm(name)] = FakeModel(name)
        await self._progress(send, steps, req.get("stream") is not False)

    async def _progress(self, send: Send, steps: list[Body], stream: bool) -> None:
        """Ollama's progress reply: NDJSON lines, or (`stream: false`) the last one alone; an `error` step
        ends it (status 500 without streaming, as Ollama answers a failed create or push)."""
        if not stream:
            status = 500 if "error" in steps[-1] else 200
            return await _send(send, response(status, dumps(steps[-1])))
        headers = [(b"content-type", b"application/x-ndjson")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for step in steps[:-1]:
            await send({"type": "http.response.body", "body": dumps(step) + b"\n", "more_body": True})
        await send({"type": "http.response.body", "body": dumps(steps[-1]) + b"\n"})

    async def _blob(self, method: str, digest: str, raw: bytes, send: Send) -> None:
        """`HEAD /api/blobs/:digest`: 200 if uploaded, else 404. `POST`: 201 once the body's sha256 matches
        (200 if already there), 400 on a bad digest or a mismatch."""
        if method not in ("HEAD", "POST"):
            return await _send(send, response(405, b"405 method not allowed", b"text/plain"))
        if not DIGEST.fullmatch(digest):
            return await _send(send, response(400, dumps({"error": "invalid digest format"})))
        digest = digest.replace("-", ":", 1)
        if method == "HEAD":
            found = digest in self.blobs
            body = b"" if found else dumps({"error": f'blob "{digest}" not found'})
            return await _send(send, response(200 if found else 404, body))  # hypercorn drops a HEAD body
        if digest in self.blobs:
            return await _send(send, response(200, b""))
        got = "sha256:" + hashlib.sha256(raw).hexdigest()
        if got != digest:
            return await _send(
                send, response(400, dumps({"error": f"digest mismatch, expected {digest}, got {got}"}))
            )
        self.blobs[digest] = len(raw)
        await _send(send, response(201, b""))

    def _create(self, req: Body) -> list[Body]:
        """The steps of `/api/create` (new form: `from` a model, or `files`/`adapters` of uploaded blobs)."""
        name = req.get("model") or req.get("name") or ""
        if not name:
            return [{"error": "invalid model name"}]
        files: dict[str, str] = {**(req.get("files") or {}), **(req.get("adapters") or {})}
        base_name = req.get("from") or ""
        if not base_name and not files:
            return [{"error": "neither 'from' or 'files' was specified"}]
        steps: list[Body] = []
        if files:
            steps.append({"status": "parsing GGUF"})
            for digest in files.values():
                if digest not in self.blobs:
                    blob = f"{BLOBS_DIR}/{digest.replace(':', '-')}"
                    return [*steps, {"error": f"open {blob}: no such file or directory"}]
                steps.append({"status": f"using existing layer {digest}"})
            model = FakeModel(name, size=sum(self.blobs[d] for d in files.values()))
        else:
            base = self.models.get(norm(base_name))
            if base is None:
                return [{"status": "pulling manifest"}, {"error": "pull model manifest: file does not exist"}]
            steps.append({"status": "reading model metadata"})
            if req.get("system"):
                steps.append({"status": "creating system layer"})
            steps.append({"status": f"using already created layer sha256:{base.digest}"})
            model = FakeModel(name, size=base.size, family=base.family, capabilities=base.capabilities)
        if req.get("quantize"):
            steps.append({"status": f"quantizing F16 model to {str(req['quantize']).upper()}"})
        self.models[norm(name)] = model
        return [*steps, {"status": "writing manifest"}, {"status": "success"}]

    def _push(self, req: Body) -> list[Body]:
        name = req.get("model") or req.get("name") or ""
        model = self.models.get(norm(name)) if name else None
        if model is None:
            return [
                {"status": "retrieving manifest"},
                {"error": f"open manifest for {name}: file does not exist"},
            ]
        digest = "sha256:" + model.digest
        steps: list[Body] = [{"status": "retrieving manifest"}]
        steps += [{"status": "starting upload", "digest": digest, "total": model.size}]
        steps += [{"status": "pushing manifest"}, {"status": "success"}]
        self.pushed.append(model.name)
        return steps

    async def _generate(
        self,
        req: Body,
        chat: bool,
        cold: bool,
        receive: Receive,
        send: Send,
        unload: str | None,
        cut_after: int | None,
    ) -> None:
        """Send the reply (a stream, or one JSON at the end) while watching for the client going away.
        Counters and `loaded` settle before the last byte leaves: a client that read the reply sees them."""
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
                    last = await self._emit(req, chat, cold, send, cut_after)
                    if last is not None:
                        finished = True
                        self._settle(unload, completed=1)
                        await _send(send, last)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                    gone = True
                nursery.cancel_scope.cancel()
        finally:
            if not finished:
                self._settle(unload, cancelled=int(gone))

    def _settle(self, unload: str | None, *, completed: int = 0, cancelled: int = 0) -> None:
        self.active_streams -= 1
        self.completed_streams += completed
        self.cancelled_streams += cancelled
        if unload in self.loaded:
            self.loaded.remove(unload)

    async def _emit(
        self, req: Body, chat: bool, cold: bool, send: Send, cut_after: int | None
    ) -> list[Message] | None:
        """Send the chunks; return the final ASGI messages still to send, or None when the reply is cut."""
        chunks, reason, evals = plan_reply(req, chat, self.reply, self.num_chunks)
        prompt_s = self.prompt_delay or 0.0004
        load_s = self.load_delay if self.load_delay else None
        final = final_body(req, chat, cold, reason, evals, max(self.chunk_delay, 0.02), prompt_s, load_s)
        # like Ollama, nothing is sent before the model is loaded and the prompt read
        busy = (load_s or 0.0) * cold + (prompt_tokens(req, chat) * self.prompt_delay)
        if busy:
            await trio.sleep(busy)
        stream = req.get("stream") is not False
        if stream:
            headers = [(b"content-type", b"application/x-ndjson")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
        for sent, chunk in enumerate([*chunks, None]):
            if cut_after is not None and sent >= cut_after:
                return None  # returning mid-body makes hypercorn drop the connection: a cut stream
            if self.stall_after_chunks is not None and sent >= self.stall_after_chunks:
                await trio.sleep_forever()
            if chunk is None:
                break
            if self.chunk_delay:
                await trio.sleep(self.chunk_delay)
            if stream:
                line = {"model": req["model"], "created_at": rfc3339(time.time_ns())} | chunk
                await send({"type": "http.response.body", "body": dumps(line) + b"\n", "more_body": True})
        head = {"model": req["model"], "created_at": rfc3339(time.time_ns())}
        if stream:
            return [{"type": "http.response.body", "body": dumps(head | final) + b"\n"}]
        return response(200, dumps(head | merge(chunks, final, chat)))


async def _send(send: Send, messages: list[Message]) -> None:
    for message in messages:
        await send(message)

"""Ollama's wire format as pure functions, for the fake node (`tests/fake_ollama.py`) of tests and benches.

Request decoding with gin/encoding-json style errors, the listing bodies (/api/tags, /api/ps, /api/show)
and the reply plan (chunks, final counters, non-stream aggregation) of /api/chat and /api/generate. Shapes
follow Ollama 0.12's `api/types.go` and `server/routes.go`. No I/O here: the server around it sends.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Body = dict[str, Any]
THINKING = "The user greets me, so I will greet them back."
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
SCHEMAS |= {
    "/api/pull": ("PullRequest", {"model": "string", "name": "string", "insecure": "bool", "stream": "bool"})
}
SCHEMAS |= {"/api/delete": ("DeleteRequest", {"model": "string", "name": "string"})}
SCHEMAS |= {"/api/copy": ("CopyRequest", {"source": "string", "destination": "string"})}
CREATE = {"model": "string", "from": "string", "files": "map[string]string", "adapters": "map[string]string"}
CREATE |= {"template": "string", "system": "string", "parameters": "map[string]interface {}"}
CREATE |= {"messages": "[]api.Message", "stream": "bool", "quantize": "string"}
SCHEMAS |= {"/api/create": ("CreateRequest", CREATE)}
SCHEMAS |= {
    "/api/push": ("PushRequest", {"model": "string", "name": "string", "insecure": "bool", "stream": "bool"})
}
GO_SYNTAX = {"Expecting property name": "looking for beginning of object key string"}
GO_SYNTAX |= {"Expecting ':'": "after object key", "Expecting ','": "after object key:value pair"}
DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
SCALAR_KINDS = {"string": "string", "bool": "bool", "int": "number", "api.ImageData": "string"}


class ApiError(Exception):
    """An error reply: `{"error": message}` with this status."""

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

    def details(self) -> Body:
        details = {"parent_model": "", "format": "gguf", "family": self.family, "families": [self.family]}
        return details | {
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }


def norm(name: str) -> str:
    """Ollama's name matching: case-insensitive, ":latest" when no tag."""
    name = name.strip().lower()
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def full_name(name: str) -> str:
    return "registry.ollama.ai/" + (name if "/" in name else "library/" + name)


def rfc3339(ns: int, *, local: bool = False) -> str:
    """Go's time.RFC3339Nano: trailing zeros of the fraction trimmed, "Z" for a zero offset."""
    secs, frac = divmod(ns, 1_000_000_000)
    dt = datetime.fromtimestamp(secs).astimezone() if local else datetime.fromtimestamp(secs, UTC)
    offset = dt.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset else 0
    zone = (
        f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}" if minutes else "Z"
    )
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac:09d}".rstrip("0") if frac else "") + zone


def keep_alive_seconds(value: Any) -> float:
    """Ollama's api.Duration: seconds as a number or a Go duration string; negative means forever."""
    if value is None:
        return 300.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float("inf") if value < 0 else float(value)
    if not isinstance(value, str):
        kind = {bool: "bool", list: "[]interface {}", dict: "map[string]interface {}"}[type(value)]
        raise ApiError(400, f"Unsupported type: '{kind}'")
    sign, rest = (-1.0, value[1:]) if value.startswith("-") else (1.0, value.removeprefix("+"))
    parts = DURATION.findall(rest)
    if rest == "0":
        return 0.0
    if not rest or "".join(n + u for n, u in parts) != rest:
        raise ApiError(400, f'time: invalid duration "{value}"')
    total = sign * sum(float(n) * UNITS[u] for n, u in parts)
    return float("inf") if total < 0 else total


def _kind(value: Any) -> str:
    kinds = {bool: "bool", str: "string", int: "number", float: "number", list: "array", dict: "object"}
    return kinds[type(value)]


def _check_think(value: Any) -> None:
    if isinstance(value, str) and value not in ("high", "medium", "low"):
        raise ApiError(
            400, f'invalid think value: "{value}" (must be "high", "medium", "low", true, or false)'
        )
    if not isinstance(value, bool | str):
        raise ApiError(400, 'think must be a boolean or string ("high", "medium", "low")')


def _check(obj: Body, fields: dict[str, str], struct: str, prefix: str = "") -> None:
    """Reject wrong JSON types the way Go's encoding/json does; null is always fine (the zero value)."""
    for key, gotype in fields.items():
        value = obj.get(key)
        if value is None:
            continue
        if gotype in ("duration", "think"):
            keep_alive_seconds(value) if gotype == "duration" else _check_think(value)
            continue
        items = [(value, gotype)]
        if gotype.startswith("[]") and isinstance(value, list):
            items += [(item, gotype[2:]) for item in value]
        for item, want in items:
            expected = SCALAR_KINDS.get(want) or (
                "array" if want[:2] == "[]" or want == "api.Tools" else "object"
            )
            if _kind(item) != expected:
                field = f"{struct}.{prefix}{key}"
                raise ApiError(
                    400, f"json: cannot unmarshal {_kind(item)} into Go struct field {field} of type {want}"
                )
            if want == "api.Message":
                _check(item, MESSAGE, struct, f"{prefix}{key}.")


def decode(raw: bytes, path: str) -> Body:
    """Decode and type-check a body like gin's ShouldBindJSON: the first JSON value only, Go's messages."""
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
        raise ApiError(400, f"json: cannot unmarshal {_kind(body)} into Go value of type api.{struct}")
    _check(body, fields, struct)
    return body


def capability_error(model: FakeModel, req: Body, chat: bool) -> ApiError | None:
    """What Ollama's scheduler says when the request needs a capability the model lacks."""
    wanted = {
        "completion": True,
        "tools": bool(chat and req.get("tools")),
        "thinking": bool(req.get("think")),
        "insert": bool(not chat and req.get("suffix")),  # fill-in-the-middle
    }
    missing = [c for c, on in wanted.items() if on and c not in model.capabilities]
    if "completion" in missing:
        return ApiError(400, f'"{req["model"]}" does not support {"chat" if chat else "generate"}')
    return ApiError(400, f"{full_name(model.name)} does not support {' '.join(missing)}") if missing else None


# ---------------------------------------------------------------------------------------------- listings
def tag_entry(m: FakeModel, modified: str) -> Body:
    entry = {"name": m.name, "model": m.name, "modified_at": modified, "size": m.size, "digest": m.digest}
    return entry | {"details": m.details(), "capabilities": list(m.capabilities)}


def ps_entry(m: FakeModel, expires: float) -> Body:
    stamp = rfc3339(int(min(expires, 10_000_000_000) * 1e9), local=True)
    entry = {"name": m.name, "model": m.name, "size": m.size, "digest": m.digest, "details": m.details()}
    return entry | {"expires_at": stamp, "size_vram": m.size, "context_length": m.context_length}


def show_body(m: FakeModel, modified: str) -> Body:
    template = (
        "{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}<|assistant|>{{ .Response }}"
    )
    params = f"{'stop':<30} {json.dumps('<|eot_id|>')}"
    modelfile = (
        '# Modelfile generated by "ollama show"\n# To build a new Modelfile based on this, replace FROM'
    )
    modelfile += f" with:\n# FROM {m.name}\n\nFROM /root/.ollama/models/blobs/sha256-{m.digest}\n"
    modelfile += f'TEMPLATE """{template}"""\nPARAMETER {params}\n'
    scale = 1e9 if m.parameter_size.endswith("B") else 1e6
    count = int(float(m.parameter_size.rstrip("BM")) * scale)
    info = {"general.architecture": m.family, "general.parameter_count": count, "general.file_type": 15}
    info |= {f"{m.family}.context_length": m.context_length, f"{m.family}.embedding_length": 3072}
    out: Body = {"license": "Fake license text.", "modelfile": modelfile, "parameters": params}
    out |= {"template": template, "details": m.details(), "model_info": info}
    return out | {"capabilities": list(m.capabilities), "modified_at": modified}


def tokens(text: str) -> int:
    return max(1, round(len(text.split()) * 1.3))


def embedding(text: str) -> list[float]:
    raw = [(b - 127.5) / 127.5 for b in hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8]]
    size = sum(x * x for x in raw) ** 0.5 or 1.0
    return [round(x / size, 6) for x in raw]


def embed_body(req: Body, legacy: bool) -> Body:
    if legacy:
        return {"embedding": embedding(req["prompt"]) if req.get("prompt") else []}
    inputs = req.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs if isinstance(inputs, list) else []
    if not all(isinstance(t, str) for t in texts):
        raise ApiError(400, "invalid input type")
    out = {"model": req["model"], "embeddings": [embedding(t) for t in texts], "total_duration": 14_000_000}
    return out | {"load_duration": 1_000_000, "prompt_eval_count": sum(map(tokens, texts))}


# ---------------------------------------------------------------------------------------------- replies
def piece(chat: bool, content: str, thinking: str = "", calls: list[Any] | None = None) -> Body:
    """One streamed chunk without model/created_at."""
    msg: Body = {"role": "assistant", "content": content} if chat else {"response": content}
    msg |= ({"thinking": thinking} if thinking else {}) | ({"tool_calls": calls} if calls else {})
    return {"message": msg, "done": False} if chat else msg | {"done": False}


def plan_reply(req: Body, chat: bool, reply: str, num_chunks: int | None) -> tuple[list[Body], str, int]:
    """The chunks (one per word, num_chunks repeats or limits), done_reason and eval_count of one reply."""
    words = reply.split(" ")
    n = num_chunks if num_chunks is not None else len(words)
    limit = (req.get("options") or {}).get("num_predict")
    reason = "stop"
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < n:
        n, reason = limit, "length"
    thoughts = [piece(chat, "", (" " if i else "") + w) for i, w in enumerate(THINKING.split())]
    thoughts = thoughts if req.get("think") else []
    messages = req.get("messages") or []
    last_user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    answered = bool(messages) and messages[-1].get("role") == "tool"  # a tool result gets a text answer
    if chat and req.get("tools") and "weather" in last_user.lower() and not answered:
        name = (req["tools"][0].get("function") or {}).get("name", "")
        call = {"function": {"name": name, "arguments": {"location": "Paris"}}}
        return [*thoughts, piece(chat, "", "", [call])], "stop", len(thoughts) + 12
    chunks = thoughts + [piece(chat, (" " if i else "") + words[i % len(words)]) for i in range(n)]
    return chunks, reason, len(chunks)


def prompt_tokens(req: Body, chat: bool) -> int:
    """How many tokens the fake says it read for this request's prompt."""
    if chat:
        return sum(tokens(m.get("content") or "") + 5 for m in req.get("messages") or [])
    return tokens(req.get("prompt") or "") + 10


def final_body(
    req: Body,
    chat: bool,
    cold: bool,
    reason: str,
    evals: int,
    token_s: float,
    prompt_token_s: float = 0.0004,
    load_s: float | None = None,
) -> Body:
    """The done chunk without model/created_at: plausible counters, durations in nanoseconds (`load_s`: what a
    cold load took, when the node really spent it)."""
    prompt = prompt_tokens(req, chat)
    load = 1_523_456_789 if cold else 18_345_678
    if cold and load_s is not None:
        load = int(load_s * 1e9)
    evals_ns = evals * int(token_s * 1e9)
    out: Body = {"message": {"role": "assistant", "content": ""}} if chat else {"response": ""}
    out |= {"done": True, "done_reason": reason}
    out |= {} if chat else {"context": [128006 + (i * 7919) % 100_000 for i in range(prompt + evals)]}
    prompt_ns = prompt * int(prompt_token_s * 1e9)
    out |= {"total_duration": load + prompt_ns + evals_ns + 2_345_678, "load_duration": load}
    out |= {"prompt_eval_count": prompt, "prompt_eval_duration": prompt_ns}
    return out | {"eval_count": evals, "eval_duration": evals_ns}


def merge(chunks: list[Body], final: Body, chat: bool) -> Body:
    """Ollama's non-stream reply: the done chunk plus the concatenated content/thinking and all tool calls."""
    parts = [c["message"] for c in chunks] if chat else chunks
    text_key = "content" if chat else "response"
    out: Body = {"role": "assistant"} if chat else {}
    out[text_key] = "".join(p.get(text_key, "") for p in parts)
    if thinking := "".join(p.get("thinking", "") for p in parts):
        out["thinking"] = thinking
    if calls := [c for p in parts for c in p.get("tool_calls", [])]:
        out["tool_calls"] = calls
    return final | ({"message": out} if chat else out)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()

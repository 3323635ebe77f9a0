"""Node kinds: how a routed request in Ollama form reaches one node, and how its answer is read back.

`herd.routing.proxy` asks `request_for` right before each attempt. An Ollama node gets the bytes unchanged and
its NDJSON is relayed as it comes (the fast path costs one comparison). A node whose agent runs
`--backend openai` gets the request translated (`herd.backends.openai_request`) and its SSE/JSON answer turned
back into Ollama chunks (`herd.backends.openai_response`), so every caller dialect works with every node kind.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import trio

from herd.backends.openai_request import translate
from herd.backends.openai_response import to_ollama
from herd.errors import BadRequest
from herd.fleet.heartbeat import OPENAI
from herd.fleet.state import NodeState, normalize_model

OPENAI_PATHS = frozenset({"/api/chat", "/api/generate", "/api/embed", "/api/embeddings"})
HERD_FIELDS = frozenset({"fallback_models", "metadata"})  # herd's own request fields, never forwarded
# Routed path → the OpenAI route an OpenAI caller's own body goes to on an OpenAI node (the native path).
NATIVE_PATHS = {"/api/chat": "/v1/chat/completions", "/api/generate": "/v1/completions"}

Wrap = Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]]


@dataclass(frozen=True, slots=True)
class NodeRequest:
    method: str
    path: str
    body: bytes | None
    wrap: Wrap | None = None  # None: the node's bytes are relayed as they come
    native: bool = False  # the node answers the OpenAI caller in its own dialect (no translation)


def model_id(node: NodeState, model: str) -> str:
    """The backend's own name for `model` (OpenAI servers list ids such as `smollm2` or a file name; herd
    routes on the normalized `smollm2:latest`)."""
    for entry in node.heartbeat.models:
        name = entry.get("model") or entry["name"]
        if normalize_model(str(name)) == model:
            return str(name)
    return model


def _load_only(obj: dict[str, Any]) -> bool:
    """An Ollama "load the model" call: a generate with nothing to generate (also what the pre-warmer sends)."""
    return not obj.get("prompt") and not obj.get("images") and not obj.get("suffix")


async def _loaded(model: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for _ in chunks:
        pass
    yield json.dumps({"model": model, "response": "", "done": True, "done_reason": "load"}).encode() + b"\n"


def _native(node: NodeState, native: dict[str, Any], model: str, path: str) -> NodeRequest:
    """An OpenAI caller's own chat (or completions) body for an OpenAI node: only the model is renamed (and usage asked for,
    so the record gets real counts; the relay drops that chunk if the caller did not ask for it)."""
    out = {k: v for k, v in native.items() if k not in HERD_FIELDS}
    out["model"] = model_id(node, model)
    if out.get("stream") is True:
        out["stream_options"] = {**(out.get("stream_options") or {}), "include_usage": True}
    return NodeRequest("POST", NATIVE_PATHS[path], json.dumps(out).encode(), native=True)


def request_for(
    node: NodeState, path: str, body: bytes, *, native: dict[str, Any] | None = None, model: str | None = None
) -> NodeRequest:
    """What to send to `node` for an Ollama-form `body` posted to `path` (`native`: the OpenAI caller's own
    chat body, used as is when the node speaks OpenAI too)."""
    if node.heartbeat.backend != OPENAI:
        return NodeRequest("POST", path, body)
    if path not in OPENAI_PATHS:
        raise BadRequest(f"node {node.node_id} is an OpenAI-compatible server and cannot serve {path}")
    if native is not None and path in NATIVE_PATHS and model is not None:
        return _native(node, native, model, path)
    obj = json.loads(body)
    model = str(obj.get("model", ""))
    if path == "/api/generate" and _load_only(obj):
        # Ollama's "load the model" idiom: one token wakes a server that unloaded it (llama.cpp's sleep mode);
        # the caller gets Ollama's answer to a load.
        wake = {
            "model": model_id(node, normalize_model(model)),
            "prompt": "Hi",
            "max_tokens": 1,
            "stream": False,
        }
        return NodeRequest("POST", "/v1/completions", json.dumps(wake).encode(), lambda c: _loaded(model, c))
    t = translate(path, obj, model_id(node, normalize_model(model)))
    started = trio.current_time()

    def wrap(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return to_ollama(
            chunks,
            kind=t.kind,
            model=model,
            stream=t.stream,
            text_api=t.path == "/v1/completions",
            started=started,
        )

    return NodeRequest("POST", t.path, json.dumps(t.body).encode(), wrap)


def show(node: NodeState, model: str) -> dict[str, Any]:
    """An `/api/show` answer for a model on an OpenAI node, from what its agent reported (these servers have
    no such endpoint)."""
    entry = next((m for m in node.heartbeat.models if normalize_model(m["name"]) == model), {"name": model})
    loaded = next((m for m in node.heartbeat.loaded if normalize_model(m["name"]) == model), {})
    info: dict[str, Any] = {}
    ctx = loaded.get("context_length") or entry.get("context_length")
    if isinstance(ctx, int):
        info["general.context_length"] = ctx
    return {
        "license": "",
        "modelfile": "",
        "parameters": "",
        "template": "",
        "details": entry.get("details") or {},
        "model_info": info,
        "capabilities": entry.get("capabilities") or ["completion"],
        "modified_at": entry.get("modified_at") or "",
    }

"""Ollama-dialect inference: `/api/chat`, `/api/generate`, `/api/embed`, `/api/embeddings`. The caller's bytes go
to the node untouched unless herd had to change the body; the node's lines come back untouched (only the final
`done` line is parsed, `herd.routing.relay`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from herd.dialects import embeddings
from herd.dialects import ollama as codec
from herd.inference.call import JSON, NDJSON, Call, Reply
from herd.inference.route import caller_body, route
from herd.routing import policies, relay
from herd.services import RouterServices

Validate = Callable[[dict[str, Any]], Any]


async def _generate_like(svc: RouterServices, call: Call, path: str, validate: Validate) -> Reply:
    body, tags, changed = caller_body(call)
    validate(body)
    stream = codec.wants_stream(body)
    plan, outcome, opened = await route(
        svc,
        call,
        body,
        dialect="ollama",
        path=path,
        requested=body["model"],
        stream=stream,
        tags=tags,
        forward=None if changed else call.raw,
    )
    headers = outcome.response_headers()
    if stream:
        return Reply(relay.ndjson(opened, outcome), NDJSON, headers)
    data = await relay.whole(opened, outcome)
    if plan.thinking:
        final = outcome.final
        message: dict[str, Any] = final["message"] if isinstance(final.get("message"), dict) else {}
        thinking = str(message.get("thinking") or final.get("thinking") or "")
        content = str(message.get("content") or final.get("response") or "")
        headers |= policies.thinking_headers(plan, final, thinking, content)
    return Reply(data, JSON, headers)


async def chat(svc: RouterServices, call: Call) -> Reply:
    return await _generate_like(svc, call, "/api/chat", codec.validate_chat)


async def generate(svc: RouterServices, call: Call) -> Reply:
    return await _generate_like(svc, call, "/api/generate", codec.validate_generate)


async def _embed_like(svc: RouterServices, call: Call, path: str, validate: Validate) -> Reply:
    body, tags, changed = caller_body(call)
    validate(body)
    _, outcome, opened = await route(
        svc,
        call,
        body,
        dialect="ollama",
        path=path,
        requested=body["model"],
        stream=False,
        tags=tags,
        task="embedding",
        forward=None if changed else call.raw,
    )
    data = await relay.json_body(opened, outcome)
    return Reply(data, JSON, outcome.response_headers())


async def embed(svc: RouterServices, call: Call) -> Reply:
    return await _embed_like(svc, call, "/api/embed", embeddings.validate_embed)


async def embeddings_legacy(svc: RouterServices, call: Call) -> Reply:
    return await _embed_like(svc, call, "/api/embeddings", embeddings.validate_legacy)

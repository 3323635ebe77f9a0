"""OpenAI- and Anthropic-dialect inference: `/v1/chat/completions`, `/v1/embeddings`, `/v1/messages`. The body
is converted to Ollama's chat API, proxied, and the chunks re-encoded as SSE (or folded into one object); an
OpenAI node gets the caller's own body and its answer comes back unchanged (`herd.routing.native`)."""

from __future__ import annotations

import json
import time
from typing import Any

from herd.dialects import anthropic, embeddings
from herd.dialects import openai as codec
from herd.inference.call import JSON, Call, Reply
from herd.inference.route import caller_body, native_reply, route, translated_reply
from herd.routing import policies, relay
from herd.services import RouterServices


async def chat_completions(svc: RouterServices, call: Call) -> Reply:
    body, tags, _ = caller_body(call)
    upstream_body, opts = codec.chat_request_to_ollama(body)
    if "fallback_models" in body:
        upstream_body["fallback_models"] = body["fallback_models"]
    plan, outcome, opened = await route(
        svc,
        call,
        upstream_body,
        dialect="openai",
        path="/api/chat",
        requested=opts.model,
        stream=opts.stream,
        tags=tags,
        native=body,
    )
    if opened.native:  # an OpenAI node: its own answer, unchanged
        return await native_reply(opened, outcome, stream=opts.stream, include_usage=opts.include_usage)
    served = outcome.model if outcome.fallback else opts.model
    completion_id, created = codec.new_completion_id(), int(time.time())

    def thinking(result: dict[str, Any]) -> dict[str, str]:
        message = result["choices"][0]["message"]
        reasoning, content = str(message.get("reasoning") or ""), str(message.get("content") or "")
        return policies.thinking_headers(plan, outcome.final, reasoning, content)

    return await translated_reply(
        opened,
        outcome,
        stream=opts.stream,
        encoder=lambda: codec.ChatStreamEncoder(served, completion_id, created, opts.include_usage),
        accumulator=lambda: codec.ChatAccumulator(served, completion_id, created),
        extra_headers=thinking if plan.thinking else None,
    )


async def create_embeddings(svc: RouterServices, call: Call) -> Reply:
    body, tags, _ = caller_body(call)
    upstream_body, opts = embeddings.openai_request(body)
    _, outcome, opened = await route(
        svc,
        call,
        upstream_body,
        dialect="openai",
        path="/api/embed",
        requested=opts.model,
        stream=False,
        tags=tags,
        task="embedding",
    )
    reply = json.loads(await relay.json_body(opened, outcome))
    return Reply(
        json.dumps(embeddings.openai_response(reply, opts)).encode(), JSON, outcome.response_headers()
    )


async def messages(svc: RouterServices, call: Call) -> Reply:
    body, tags, _ = caller_body(call)
    upstream_body, opts = anthropic.request_to_ollama(body)
    _, outcome, opened = await route(
        svc,
        call,
        upstream_body,
        dialect="anthropic",
        path="/api/chat",
        requested=opts.model,
        stream=opts.stream,
        tags=tags,
    )
    served = outcome.model if outcome.fallback else opts.model
    message_id = anthropic.new_message_id()
    return await translated_reply(
        opened,
        outcome,
        stream=opts.stream,
        encoder=lambda: anthropic.MessagesStreamEncoder(served, message_id),
        accumulator=lambda: anthropic.MessagesAccumulator(served, message_id),
    )

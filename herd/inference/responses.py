"""OpenAI Responses API (`/v1/responses`) and legacy completions (`/v1/completions`).

Both are translated routes: the body becomes an Ollama chat (`herd.dialects.responses`) or generate
(`herd.dialects.completions`) body, goes through the same policies, holding queue and proxy as every other
generation, and the node's chunks are re-encoded by the dialect's stream encoder or folded into one object.
Completions on an OpenAI-compatible node take the native path (the caller's own body, the node's own answer).
"""

from __future__ import annotations

import time

from herd.dialects import completions, responses, responses_stream
from herd.inference.call import Call, Reply
from herd.inference.route import caller_body, native_reply, route, translated_reply
from herd.services import RouterServices


async def create_response(svc: RouterServices, call: Call) -> Reply:
    body, tags, _ = caller_body(call)
    upstream_body, opts = responses.request_to_ollama(body, svc.items.recall)
    _, outcome, opened = await route(
        svc,
        call,
        upstream_body,
        dialect="openai",
        path="/api/chat",
        requested=opts.model,
        stream=opts.stream,
        tags=tags,
    )
    served = outcome.model if outcome.fallback else opts.model
    response_id, created = responses_stream.new_response_id(), int(time.time())
    keep = svc.items.keep
    return await translated_reply(
        opened,
        outcome,
        stream=opts.stream,
        encoder=lambda: responses_stream.ResponsesStreamEncoder(served, response_id, created, opts, keep),
        accumulator=lambda: responses_stream.ResponsesAccumulator(served, response_id, created, opts, keep),
    )


async def create_completion(svc: RouterServices, call: Call) -> Reply:
    body, tags, _ = caller_body(call)
    upstream_body, opts = completions.request_to_ollama(body)
    _, outcome, opened = await route(
        svc,
        call,
        upstream_body,
        dialect="openai",
        path="/api/generate",
        requested=opts.model,
        stream=opts.stream,
        tags=tags,
        native=body,
    )
    if opened.native:  # an OpenAI node: its own answer, unchanged
        return await native_reply(opened, outcome, stream=opts.stream, include_usage=opts.include_usage)
    served = outcome.model if outcome.fallback else opts.model
    completion_id, created = completions.new_completion_id(), int(time.time())
    return await translated_reply(
        opened,
        outcome,
        stream=opts.stream,
        encoder=lambda: completions.CompletionStreamEncoder(
            served, completion_id, created, opts.include_usage
        ),
        accumulator=lambda: completions.CompletionAccumulator(served, completion_id, created),
    )

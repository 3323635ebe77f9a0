"""OpenAI Responses API (`POST /v1/responses`) and legacy completions (`POST /v1/completions`).

Both are translated routes: the body becomes an Ollama chat (`herd.dialects.responses`) or generate
(`herd.dialects.completions`) body, goes through the same policies, holding queue and proxy as every other
generation, and the node's chunks are re-encoded by the dialect's stream encoder or folded into one object.
Completions on an OpenAI-compatible node take the native path (the caller's own body, the node's own answer).
Errors render as OpenAI error objects (`herd.web.errors`, every `/v1/` route).
"""

from __future__ import annotations

import json
import time
from typing import Any

from quart import Blueprint, Response, request

from herd.dialects import completions, responses, responses_stream
from herd.dialects import ollama as ollama_codec
from herd.dialects.tags import extract_tags
from herd.reqscope import request_stack
from herd.routing import native, policies, relay
from herd.routing.proxy import Opened
from herd.routing.record import RequestRecord
from herd.services import RouterServices

JSON = "application/json; charset=utf-8"


async def _caller_body() -> tuple[dict[str, Any], tuple[str, ...]]:
    raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    return extract_tags(ollama_codec.parse_body(raw), request.headers.get("X-Herd-Tags"))[:2]


async def _route(
    svc: RouterServices,
    upstream_body: dict[str, Any],
    *,
    path: str,
    requested: str,
    stream: bool,
    tags: tuple[str, ...],
    native_body: dict[str, Any] | None = None,
) -> tuple[RequestRecord, Opened]:
    """Policies, the request's record, and a node streaming the converted body."""
    plan = policies.plan(
        upstream_body,
        strict_header=request.headers.get("X-Herd-Strict"),
        snap=svc.registry.snapshot,
        cfg=svc.policy_now(),
    )
    outcome = svc.recorder.begin(
        request.scope,
        dialect="openai",
        path=path,
        requested_model=requested,
        model=plan.requested,
        stream=stream,
        tags=tags,
    )
    opened = await svc.proxy.open(request_stack(request.scope), outcome, plan, None, native_body)
    return outcome, opened


def _events(body: Any, outcome: RequestRecord) -> Response:
    headers = {**outcome.response_headers(), "Cache-Control": "no-cache"}
    response = Response(body, content_type="text/event-stream", headers=headers)
    response.timeout = None
    return response


async def create_response(svc: RouterServices) -> Response:
    body, tags = await _caller_body()
    upstream_body, opts = responses.request_to_ollama(body, svc.items.recall)
    outcome, opened = await _route(
        svc, upstream_body, path="/api/chat", requested=opts.model, stream=opts.stream, tags=tags
    )
    served = outcome.model if outcome.fallback else opts.model
    response_id, created = responses_stream.new_response_id(), int(time.time())
    if opts.stream:
        encoder = responses_stream.ResponsesStreamEncoder(served, response_id, created, opts, svc.items.keep)
        return _events(relay.sse(opened, outcome, encoder), outcome)
    acc = responses_stream.ResponsesAccumulator(served, response_id, created, opts, svc.items.keep)
    result = await relay.fold(opened, outcome, acc)
    return Response(json.dumps(result), content_type=JSON, headers=outcome.response_headers())


async def create_completion(svc: RouterServices) -> Response:
    body, tags = await _caller_body()
    upstream_body, opts = completions.request_to_ollama(body)
    outcome, opened = await _route(
        svc,
        upstream_body,
        path="/api/generate",
        requested=opts.model,
        stream=opts.stream,
        tags=tags,
        native_body=body,
    )
    if opened.native:  # an OpenAI node: its own answer, unchanged
        if opts.stream:
            return _events(native.sse(opened, outcome, include_usage=opts.include_usage), outcome)
        data = await native.whole(opened, outcome)
        return Response(data, content_type=JSON, headers=outcome.response_headers())
    served = outcome.model if outcome.fallback else opts.model
    completion_id, created = completions.new_completion_id(), int(time.time())
    if opts.stream:
        encoder = completions.CompletionStreamEncoder(served, completion_id, created, opts.include_usage)
        return _events(relay.sse(opened, outcome, encoder), outcome)
    result = await relay.fold(
        opened, outcome, completions.CompletionAccumulator(served, completion_id, created)
    )
    return Response(json.dumps(result), content_type=JSON, headers=outcome.response_headers())


ROUTES = (("/v1/responses", create_response), ("/v1/completions", create_completion))


def blueprint(svc: RouterServices) -> Blueprint:
    bp = Blueprint("responses", __name__)
    for rule, handler in ROUTES:

        async def view(handler: Any = handler) -> Response:
            return await handler(svc)

        bp.add_url_rule(rule, endpoint=handler.__name__, view_func=view, methods=["POST"])
    return bp

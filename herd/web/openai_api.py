"""OpenAI-dialect routes: convert the request to Ollama's chat API, proxy it, re-encode chunks as SSE (or one
`chat.completion`), and list the fleet's models."""

from __future__ import annotations

import json
import time
from typing import Any

from quart import Blueprint, Response, request

from herd.dialects import anthropic, embeddings
from herd.dialects import ollama as ollama_codec
from herd.dialects import openai as codec
from herd.dialects.tags import extract_tags
from herd.errors import ModelNotFound
from herd.fleet import catalog
from herd.fleet.state import normalize_model
from herd.reqscope import request_stack
from herd.routing import aliases, native, policies, relay
from herd.routing.media import catalog as media_catalog
from herd.routing.proxy import Opened
from herd.routing.record import RequestRecord
from herd.services import RouterServices
from herd.validate import model_name

JSON = "application/json; charset=utf-8"


def _json(payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), content_type=JSON, headers=headers)


def blueprint(svc: RouterServices) -> Blueprint:
    bp = Blueprint("openai", __name__)

    async def caller_body() -> tuple[dict[str, Any], tuple[str, ...]]:
        raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        return extract_tags(ollama_codec.parse_body(raw), request.headers.get("X-Herd-Tags"))[:2]

    async def route(
        upstream_body: dict[str, Any],
        *,
        dialect: str,
        path: str,
        requested: str,
        stream: bool,
        tags: tuple[str, ...],
        task: str = "completion",
        native: dict[str, Any] | None = None,
    ) -> tuple[policies.Plan, RequestRecord, Opened]:
        """Policies, the request's record, and a node streaming the converted body (the shared middle)."""
        plan = policies.plan(
            upstream_body,
            strict_header=request.headers.get("X-Herd-Strict"),
            snap=svc.registry.snapshot,
            cfg=svc.policy_now(),
            task=task,
        )
        outcome = svc.recorder.begin(
            request.scope,
            dialect=dialect,
            path=path,
            requested_model=requested,
            model=plan.requested,
            stream=stream,
            tags=tags,
        )
        opened = await svc.proxy.open(request_stack(request.scope), outcome, plan, None, native)
        return plan, outcome, opened

    def event_stream(opened: Opened, outcome: RequestRecord, encoder: relay.StreamEncoder) -> Response:
        headers = {**outcome.response_headers(), "Cache-Control": "no-cache"}
        response = Response(
            relay.sse(opened, outcome, encoder), content_type="text/event-stream", headers=headers
        )
        response.timeout = None
        return response

    @bp.post("/v1/chat/completions")
    async def chat_completions() -> Response:
        body, tags = await caller_body()
        upstream_body, opts = codec.chat_request_to_ollama(body)
        if "fallback_models" in body:
            upstream_body["fallback_models"] = body["fallback_models"]
        plan, outcome, opened = await route(
            upstream_body,
            dialect="openai",
            path="/api/chat",
            requested=opts.model,
            stream=opts.stream,
            tags=tags,
            native=body,
        )
        if opened.native:  # an OpenAI node: its own answer, unchanged
            if opts.stream:
                headers = {**outcome.response_headers(), "Cache-Control": "no-cache"}
                events = native.sse(opened, outcome, include_usage=opts.include_usage)
                response = Response(events, content_type="text/event-stream", headers=headers)
                response.timeout = None
                return response
            return Response(
                await native.whole(opened, outcome), content_type=JSON, headers=outcome.response_headers()
            )
        served = outcome.model if outcome.fallback else opts.model
        completion_id, created = codec.new_completion_id(), int(time.time())
        if opts.stream:
            encoder = codec.ChatStreamEncoder(served, completion_id, created, opts.include_usage)
            return event_stream(opened, outcome, encoder)
        result = await relay.fold(opened, outcome, codec.ChatAccumulator(served, completion_id, created))
        headers = outcome.response_headers()
        if plan.thinking:
            message = result["choices"][0]["message"]
            headers |= policies.thinking_headers(
                plan, outcome.final, str(message.get("reasoning") or ""), str(message.get("content") or "")
            )
        return _json(result, headers)

    @bp.post("/v1/embeddings")
    async def create_embeddings() -> Response:
        body, tags = await caller_body()
        upstream_body, opts = embeddings.openai_request(body)
        _, outcome, opened = await route(
            upstream_body,
            dialect="openai",
            path="/api/embed",
            requested=opts.model,
            stream=False,
            tags=tags,
            task="embedding",
        )
        reply = json.loads(await relay.json_body(opened, outcome))
        return _json(embeddings.openai_response(reply, opts), outcome.response_headers())

    @bp.post("/v1/messages")
    async def messages() -> Response:
        body, tags = await caller_body()
        upstream_body, opts = anthropic.request_to_ollama(body)
        _, outcome, opened = await route(
            upstream_body,
            dialect="anthropic",
            path="/api/chat",
            requested=opts.model,
            stream=opts.stream,
            tags=tags,
        )
        served = outcome.model if outcome.fallback else opts.model
        message_id = anthropic.new_message_id()
        if opts.stream:
            return event_stream(opened, outcome, anthropic.MessagesStreamEncoder(served, message_id))
        acc = anthropic.MessagesAccumulator(served, message_id)
        return _json(await relay.fold(opened, outcome, acc), outcome.response_headers())

    @bp.get("/v1/models")
    async def models() -> Response:
        snap = svc.registry.snapshot
        merged = catalog.merged_tags(snap)
        listing = codec.models_list(merged + aliases.tag_entries(svc.settings.aliases, merged))
        # media models too, as OpenAI lists its image and audio models
        media = media_catalog(snap, "image") + media_catalog(snap, "transcription")
        listing["data"] += [codec.media_model_object(item, int(time.time())) for item in media]
        return _json(listing)

    @bp.get("/v1/models/<path:model_id>")
    async def model(model_id: str) -> Response:
        model_id = model_name(model_id)
        entry = catalog.find_model(svc.registry.snapshot, model_id)
        if entry is None and aliases.resolve(svc.settings.aliases, model_id):
            merged = catalog.merged_tags(svc.registry.snapshot)
            entry = next(
                e
                for e in aliases.tag_entries(svc.settings.aliases, merged)
                if normalize_model(e["name"]) == normalize_model(model_id)
            )
        if entry is None:
            raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
        return _json(codec.model_object(entry))

    return bp

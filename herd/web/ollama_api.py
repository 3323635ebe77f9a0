"""Ollama-dialect routes: parse and validate, hand to the proxy, relay the node's bytes back (fast path).

`/api/chat` and `/api/generate` forward the caller's body unchanged to the chosen node; listings are merged
from the fleet snapshot without touching any node.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Blueprint, Response, request

from herd.dialects import embeddings
from herd.dialects import ollama as codec
from herd.dialects.tags import extract_tags
from herd.errors import ModelNotFound, gateway_status
from herd.fleet import catalog
from herd.fleet.state import normalize_model
from herd.reqscope import request_stack
from herd.routing import aliases, policies, relay
from herd.services import RouterServices
from herd.validate import header_value

NDJSON = "application/x-ndjson"
JSON = "application/json; charset=utf-8"
FALLBACK_VERSION = "0.12.0"  # reported by /api/version only while no node has told us its own


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status=status, content_type=JSON, headers=headers)


def blueprint(svc: RouterServices) -> Blueprint:
    bp = Blueprint("ollama", __name__)

    async def generate_like(path: str, validate: Any) -> Response:
        raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        body, tags, changed = extract_tags(codec.parse_body(raw), request.headers.get("X-Herd-Tags"))
        validate(body)
        plan = policies.plan(
            body,
            strict_header=request.headers.get("X-Herd-Strict"),
            snap=svc.registry.snapshot,
            cfg=svc.policy_now(),
        )
        stream = codec.wants_stream(body)
        outcome = svc.recorder.begin(
            request.scope,
            dialect="ollama",
            path=path,
            requested_model=body["model"],
            model=plan.requested,
            stream=stream,
            tags=tags,
        )
        # Fast path: the caller's bytes go to the node untouched unless herd had to change the body.
        forward = raw if not changed and plan.body is body else None
        opened = await svc.proxy.open(request_stack(request.scope), outcome, plan, forward)
        headers = outcome.response_headers()
        if stream:
            response = Response(relay.ndjson(opened, outcome), content_type=NDJSON, headers=headers)
            response.timeout = None
            return response
        data = await relay.whole(opened, outcome)
        if plan.thinking:
            final = outcome.final
            message: dict[str, Any] = final["message"] if isinstance(final.get("message"), dict) else {}
            thinking = str(message.get("thinking") or final.get("thinking") or "")
            content = str(message.get("content") or final.get("response") or "")
            headers |= policies.thinking_headers(plan, final, thinking, content)
        return Response(data, content_type=JSON, headers=headers)

    @bp.post("/api/chat")
    async def chat() -> Response:
        return await generate_like("/api/chat", codec.validate_chat)

    @bp.post("/api/generate")
    async def generate() -> Response:
        return await generate_like("/api/generate", codec.validate_generate)

    async def embed_like(path: str, validate: Any) -> Response:
        raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        body, tags, changed = extract_tags(codec.parse_body(raw), request.headers.get("X-Herd-Tags"))
        validate(body)
        plan = policies.plan(
            body,
            strict_header=request.headers.get("X-Herd-Strict"),
            snap=svc.registry.snapshot,
            cfg=svc.policy_now(),
            task="embedding",
        )
        outcome = svc.recorder.begin(
            request.scope,
            dialect="ollama",
            path=path,
            requested_model=body["model"],
            model=plan.requested,
            stream=False,
            tags=tags,
        )
        forward = raw if not changed and plan.body is body else None
        opened = await svc.proxy.open(request_stack(request.scope), outcome, plan, forward)
        data = await relay.json_body(opened, outcome)
        return Response(data, content_type=JSON, headers=outcome.response_headers())

    @bp.post("/api/embed")
    async def embed() -> Response:
        return await embed_like("/api/embed", embeddings.validate_embed)

    @bp.post("/api/embeddings")
    async def embeddings_legacy() -> Response:
        return await embed_like("/api/embeddings", embeddings.validate_legacy)

    @bp.post("/api/show")
    async def show() -> Response:
        raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        name = codec.validate_show(codec.parse_body(raw))
        model = (aliases.resolve(svc.settings.aliases, name) or (normalize_model(name),))[0]
        if model != normalize_model(name):  # an alias: show its model
            raw = json.dumps({**json.loads(raw), "model": model, "name": model}).encode()
        if not svc.registry.snapshot.knows_model(model) and not svc.proxy.starting(model):
            raise ModelNotFound(f"model '{name}' not found", param="model")
        node, status, data = await svc.proxy.call(model, "/api/show", raw)
        return Response(
            data,
            status=gateway_status(status),
            content_type=JSON,
            headers={"X-Herd-Node": header_value(node.node_id), "X-Herd-Model": header_value(model)},
        )

    @bp.get("/api/tags")
    async def tags() -> Response:
        merged = catalog.merged_tags(svc.registry.snapshot)
        return _json({"models": merged + aliases.tag_entries(svc.settings.aliases, merged)})

    @bp.get("/api/ps")
    async def ps() -> Response:
        return _json({"models": catalog.merged_ps(svc.registry.snapshot)})

    @bp.get("/api/version")
    async def version() -> Response:
        return _json({"version": catalog.fleet_version(svc.registry.snapshot, FALLBACK_VERSION)})

    @bp.route("/", methods=["GET", "HEAD"])
    async def root() -> Response:
        return Response("Ollama is running", content_type="text/plain; charset=utf-8")

    return bp

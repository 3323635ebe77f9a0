"""Ollama-dialect routes other than inference: `/api/show` proxied to a node that has the model, listings merged
from the fleet snapshot without touching any node. `/api/chat`, `/api/generate` and `/api/embed(dings)` are
served below Quart by `herd.web.fastpath` (logic in `herd.inference.ollama`).
"""

from __future__ import annotations

import json
from typing import Any

from quart import Blueprint, Response, request

from herd.dialects import ollama as codec
from herd.errors import ModelNotFound, gateway_status
from herd.fleet import catalog
from herd.fleet.state import normalize_model
from herd.routing import aliases, oneshot
from herd.services import RouterServices
from herd.validate import header_value

JSON = "application/json; charset=utf-8"
FALLBACK_VERSION = "0.12.0"  # reported by /api/version only while no node has told us its own


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status=status, content_type=JSON, headers=headers)


def blueprint(svc: RouterServices) -> Blueprint:
    bp = Blueprint("ollama", __name__)

    @bp.post("/api/show")
    async def show() -> Response:
        raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        name = codec.validate_show(codec.parse_body(raw))
        model = (aliases.resolve(svc.settings.aliases, name) or (normalize_model(name),))[0]
        if model != normalize_model(name):  # an alias: show its model
            raw = json.dumps({**json.loads(raw), "model": model, "name": model}).encode()
        if not svc.registry.snapshot.knows_model(model) and not svc.proxy.starting(model):
            raise ModelNotFound(f"model '{name}' not found", param="model")
        node, status, data = await oneshot.call(svc.proxy, model, "/api/show", raw)
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

"""OpenAI-dialect listings: the fleet's models. `/v1/chat/completions`, `/v1/embeddings` and `/v1/messages` are
served below Quart by `herd.web.fastpath` (logic in `herd.inference.openai`)."""

from __future__ import annotations

import json
import time
from typing import Any

from quart import Blueprint, Response

from herd.dialects import openai as codec
from herd.errors import ModelNotFound
from herd.fleet import catalog
from herd.fleet.state import normalize_model
from herd.routing import aliases
from herd.routing.media import catalog as media_catalog
from herd.services import RouterServices
from herd.validate import model_name

JSON = "application/json; charset=utf-8"


def _json(payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), content_type=JSON, headers=headers)


def blueprint(svc: RouterServices) -> Blueprint:
    bp = Blueprint("openai", __name__)

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

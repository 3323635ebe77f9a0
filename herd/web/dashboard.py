"""The live dashboard: `GET /dashboard` (HTML/CSS/JS files from `herd/web/static/`, no CDN), the WebSocket at
`/dashboard/ws` streaming fleet and request frames from the broadcaster (with an admin key set, the socket's
first message must carry it: `{"type": "auth", "key": "..."}`), and `GET`/`POST /fleet/settings`
for runtime toggles next to the read-only config."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import trio
from quart import Blueprint, Response, send_from_directory, websocket

from herd.dialects.ollama import parse_body
from herd.errors import NotFound
from herd.guard.keys import auth_message_key
from herd.observe.broadcaster import Broadcaster
from herd.observe.fleet_view import fleet_status
from herd.services import RouterServices
from herd.validate import flaw

STATIC = Path(__file__).parent / "static"
AUTH_TIMEOUT = 10.0  # seconds a dashboard socket has to send its admin key
UNAUTHORIZED_CLOSE = 4401  # WebSocket close code: the admin key is missing or wrong (the page asks for it)
JSON = "application/json; charset=utf-8"
MAX_STATIC_NAME = 255


def _config_json(svc: RouterServices) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(svc.cfg), default=str))


def blueprint(svc: RouterServices, broadcaster: Broadcaster) -> Blueprint:
    bp = Blueprint("dashboard", __name__)

    @bp.get("/dashboard")
    async def page() -> Response:
        return await send_from_directory(STATIC, "dashboard.html")

    @bp.get("/dashboard/static/<path:name>")
    async def static(name: str) -> Response:
        if len(name) > MAX_STATIC_NAME or flaw(name) is not None:  # NUL or a name the OS refuses: 404
            raise NotFound(f"no such file: {name[:64]!r}")
        return await send_from_directory(STATIC, name)

    @bp.websocket("/dashboard/ws")
    async def socket() -> None:
        await websocket.accept()  # Quart accepts lazily on first send: do it now
        if svc.cfg.security.admin_key is not None:
            presented = None
            with trio.move_on_after(AUTH_TIMEOUT):
                presented = auth_message_key(await websocket.receive())
            if not svc.cfg.security.admin_key.matches(presented):
                await websocket.close(UNAUTHORIZED_CLOSE, "admin key required")
                return
        send, receive = broadcaster.subscribe()
        try:
            await websocket.send(json.dumps({"type": "fleet", "data": fleet_status(svc)}))
            async with trio.open_nursery() as nursery:

                async def drain_client() -> None:
                    while True:  # the client says nothing; a disconnect ends this loop and the handler
                        await websocket.receive()

                nursery.start_soon(drain_client)
                async with receive:
                    async for text in receive:
                        await websocket.send(text)
                nursery.cancel_scope.cancel()
        finally:
            broadcaster.unsubscribe(send)

    @bp.get("/fleet/settings")
    async def settings() -> Response:
        return Response(
            json.dumps({"toggles": svc.settings.as_json(), "config": _config_json(svc)}), content_type=JSON
        )

    @bp.post("/fleet/settings")
    async def change_settings() -> Response:
        from quart import request

        svc.settings.update(
            parse_body(await request.get_data(cache=False, as_text=False, parse_form_data=False))
        )
        return Response(json.dumps({"toggles": svc.settings.as_json()}), content_type=JSON)

    return bp

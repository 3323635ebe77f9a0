"""The agent's command server behind the fleet token: an ASGI layer in front of `herd.node.commands` that reads
each request's body, checks its signature (`herd.fleet.signing`, signed by the router in `herd.routing.media`)
and only then hands the request, body replayed, to the app. Unsigned, wrongly signed, stale or replayed
requests get 401 and never reach a command. Without a token the app is served as it is."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from werkzeug.datastructures import Headers

from herd.errors import FleetUnauthorized
from herd.fleet.signing import Verifier

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
MAX_BODY = 256 * 1024 * 1024


async def _answer(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": "authentication_error"}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SignedOnly:
    """ASGI app: `app` for requests signed with the fleet token, 401 for the rest."""

    def __init__(self, app: Any, verifier: Verifier, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.verifier = verifier
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]])
        try:
            self.verifier.precheck(headers, time.time())  # unsigned requests are refused unread
        except FleetUnauthorized as exc:
            await _answer(send, 401, exc.message)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _answer(send, 413, "request body too large")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        raw = scope.get("raw_path") or scope["path"].encode()
        target = raw.decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            self.verifier.check(scope["method"], target, body, headers, time.time())
        except FleetUnauthorized as exc:
            await _answer(send, 401, exc.message)
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

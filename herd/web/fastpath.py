"""The inference routes' fast path: a raw ASGI dispatcher between the guard (`herd.web.guard`) and the Quart app.

`POST` to a path in `herd.inference.routes.ROUTES` is served here; everything else goes on to Quart. Per request:
the body is read (within `--body-timeout`, else 408), the route's handler gets a `herd.inference.call.Call` and
returns a `Reply`, sent as one head and one body send, or one send per block of a stream. Errors render exactly
as the Quart handler renders them (`herd.web.errors`): a `HerdError` in the caller's dialect with its status and
headers, anything else logged, counted (`herd_unexpected_errors_total`) and a 500, the request's record marked
either way. A task watches for the client
going away and cancels the handler or the stream, which closes the request's exit stack (slot, upstream
connection, record) as on the Quart path; the ASGI wrapper in `herd.web.server` owns that stack.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import trio

from herd.dialects.errors import error_payload
from herd.errors import HerdError, RequestTimeout
from herd.inference.call import JSON, Call, Reply
from herd.inference.routes import ROUTES, Handler
from herd.routing.record import record_of
from herd.services import RouterServices

log = logging.getLogger("herd.web")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# What Quart answers for a body that does not arrive in time (werkzeug's RequestTimeout).
BODY_TIMEOUT_MESSAGE = (
    "The server closed the network connection because the browser didn't finish the request within the"
    " specified time."
)


class _ClientGone(Exception):
    """The client disconnected before its body was in."""


class FastPath:
    def __init__(self, app: Any, services: RouterServices) -> None:
        self.app = app
        self.svc = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = ROUTES.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        raw = None
        with trio.move_on_after(self.svc.cfg.body_timeout):
            try:
                raw = await _read_body(receive)
            except _ClientGone:
                return
        if raw is None:
            exc = RequestTimeout(BODY_TIMEOUT_MESSAGE)
            await _send_error(
                send, scope["path"], exc.status, exc.message, code=exc.code, kind=exc.openai_type
            )
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch, receive, nursery.cancel_scope)
            await self._respond(handler, Call(scope, raw), send)
            nursery.cancel_scope.cancel()

    async def _respond(self, handler: Handler, call: Call, send: Send) -> None:
        scope = call.scope
        try:
            reply = await handler(self.svc, call)
        except HerdError as exc:
            rec = record_of(scope)
            if rec is not None:
                rec.fail(exc.status, exc.message)
            await _send_error(
                send,
                scope["path"],
                exc.status,
                exc.message,
                code=exc.code,
                kind=exc.openai_type,
                param=exc.param,
                headers=exc.headers(),
            )
            return
        except Exception as exc:
            self.svc.metrics.count_unexpected()
            rec = record_of(scope)
            if rec is not None:
                rec.fail(500, f"internal error: {type(exc).__name__}")
            log.exception("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
            message = f"internal error: {type(exc).__name__}"
            await _send_error(send, scope["path"], 500, message, code="internal_error", kind="server_error")
            return
        await _send_reply(send, reply)


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


async def _watch(receive: Receive, scope: trio.CancelScope) -> None:
    """Cancel the response when the client disconnects (the body is already in: only that can come)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _head(status: int, content_type: str, headers: dict[str, str], length: int | None) -> dict[str, Any]:
    pairs = [(b"content-type", content_type.encode("latin-1"))]
    if length is not None:
        pairs.append((b"content-length", str(length).encode("latin-1")))
    pairs += [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers.items()]
    return {"type": "http.response.start", "status": status, "headers": pairs}


async def _send_reply(send: Send, reply: Reply) -> None:
    body = reply.body
    if isinstance(body, bytes):
        await send(_head(reply.status, reply.content_type, reply.headers, len(body)))
        await send({"type": "http.response.body", "body": body})
        return
    await _send_stream(send, reply, body)


async def _send_stream(send: Send, reply: Reply, body: AsyncIterator[bytes]) -> None:
    await send(_head(reply.status, reply.content_type, reply.headers, None))
    # an exception past this point (the status line is out) reaches herd.web.server: logged, counted, cut
    async with aclosing(body) as blocks:  # type: ignore[type-var]  # the relays are async generators
        async for block in blocks:
            await send({"type": "http.response.body", "body": block, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _send_error(
    send: Send,
    path: str,
    status: int,
    message: str,
    *,
    code: str,
    kind: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    payload = error_payload(path, status, message, code=code, openai_type=kind, param=param)
    await _send_reply(send, Reply(payload, JSON, headers or {}, status))

"""The inference routes' fast path: a raw ASGI dispatcher between the guard (`herd.web.guard`) and the Quart app.

`POST` to a path in `herd.inference.routes.ROUTES` is served here; everything else goes on to Quart. Per request:
the body is read (within `--body-timeout`, else 408), the route's handler gets a `herd.inference.call.Call` and
returns a `Reply`, sent as one head and one body send, or one send per block of a stream. Errors render exactly
as the Quart handler renders them (`herd.web.errors`): a `HerdError` in the caller's dialect with its status and
headers, anything else logged, counted (`herd_unexpected_errors_total`) and a 500, the request's record marked
either way; an exception once the status line is out cuts the response (the client sees a broken body).

The fast path owns each request's exit stack (`herd.reqscope`: slot, upstream connection, record), which
closes when the response ends, fails or the client leaves: the ASGI wrapper in `herd.web.server` passes these
requests straight through (`FastPath.owns`). A client going away cancels the handler or the stream: for HTTP/1.1
the connection layer reports it (`herd.reqscope.ClientLinks`, no task per request), else a task watches the ASGI
receive channel. The watch stands down once the final send begins, so that send (where hypercorn re-arms its
keep-alive timer, and announces the request's end as a disconnect) is never cut, with no shielded scope.
Response header values are made safe here (`safe_header`), as the wrapper does for Quart's responses.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, aclosing
from typing import Any

import trio

from herd.dialects.errors import error_payload
from herd.errors import HerdError, RequestTimeout
from herd.inference.call import JSON, Call, Reply
from herd.inference.routes import ROUTES, Handler
from herd.reqscope import SCOPE_KEY, ClientLinks
from herd.routing.record import record_of
from herd.services import RouterServices
from herd.validate import safe_header

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


class _Watch:
    """The disconnect watch's switch: `end()` once the final send begins (a disconnect after that is the server
    announcing the request's end, or the client leaving once it has everything: nothing to cancel)."""

    __slots__ = ("client", "ending", "links", "scope")

    def __init__(
        self, links: ClientLinks | None = None, client: Any = None, scope: trio.CancelScope | None = None
    ) -> None:
        self.ending = False
        self.links, self.client, self.scope = links, client, scope

    def hold_head(self) -> None:
        """The head about to go out is followed at once by the whole body: let them leave in one write."""
        if self.links is not None and not self.ending:
            self.links.hold_head(self.client)

    def end(self) -> None:
        self.ending = True
        if self.links is not None and self.scope is not None:
            self.links.discard(self.client, self.scope)


class FastPath:
    def __init__(self, app: Any, services: RouterServices, links: ClientLinks | None = None) -> None:
        self.app = app
        self.svc = services
        self.links = links  # the connection layer's client-left signal (else a watcher task)

    @staticmethod
    def owns(scope: Scope) -> bool:
        """Whether this request is served here (the ASGI wrapper then leaves it alone)."""
        return scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in ROUTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = ROUTES.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        raw = None
        parts: list[bytes] = []
        try:
            # a body the server already queued is taken as it is: no wait, no deadline
            if _take_queued(receive, parts, _length(scope)):
                raw = parts[0] if len(parts) == 1 else b"".join(parts)
            else:
                with trio.move_on_after(self.svc.cfg.body_timeout):
                    raw = await _read_body(receive, parts)
        except _ClientGone:
            return
        if raw is None:
            exc = RequestTimeout(BODY_TIMEOUT_MESSAGE)
            await _send_error(
                send, scope["path"], exc.status, exc.message, code=exc.code, kind=exc.openai_type
            )
            return
        async with AsyncExitStack() as stack:
            scope[SCOPE_KEY] = stack
            await self._watched(handler, Call(scope, raw), receive, send)

    async def _watched(self, handler: Handler, call: Call, receive: Receive, send: Send) -> None:
        """Serve the call, cancelled if the client leaves first."""
        client = call.scope.get("client")
        if self.links is not None and client is not None and call.scope.get("http_version") != "2":
            # HTTP/1.1: the connection layer says when this client leaves (`ClientLinks`), no task needed
            with trio.CancelScope() as cancel:
                watch = _Watch(self.links, client, cancel)
                self.links.add(client, cancel)
                try:
                    await self._respond(handler, call, send, watch)
                finally:
                    watch.end()
            return
        # HTTP/2 (a client can cancel one stream of its connection), or no connection layer: a watcher task
        watch = _Watch()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch, receive, nursery.cancel_scope, watch)
            await self._respond(handler, call, send, watch)
            nursery.cancel_scope.cancel()

    async def _respond(self, handler: Handler, call: Call, send: Send, watch: _Watch) -> None:
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
                watch=watch,
            )
            return
        except Exception as exc:
            self.svc.metrics.count_unexpected()
            rec = record_of(scope)
            if rec is not None:
                rec.fail(500, f"internal error: {type(exc).__name__}")
            log.exception("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
            message = f"internal error: {type(exc).__name__}"
            await _send_error(
                send, scope["path"], 500, message, code="internal_error", kind="server_error", watch=watch
            )
            return
        try:
            await _send_reply(send, reply, watch)
        except Exception as exc:  # the status line is out: the response is cut, the connection closes
            self.svc.metrics.count_unexpected()
            log.exception("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)


def _length(scope: Scope) -> int | None:
    """The request's Content-Length (the guard's rules refused a malformed one), None if it has none."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _take_queued(receive: Receive, parts: list[bytes], length: int | None) -> bool:
    """Take the request's messages the server has already queued, without waiting: True once the body is
    complete (its last message, or all of its Content-Length: the server's empty end-of-body message may still
    be on its way, and is not needed). hypercorn's trio worker hands each app the `receive` of a Trio memory
    channel, so a body that came with its head (the usual case) is read with no checkpoint and no deadline
    scope; any other `receive`, or a body still arriving, is read by `_read_body` (under the body timeout)."""
    channel = getattr(receive, "__self__", None)
    if not isinstance(channel, trio.MemoryReceiveChannel):
        return False
    seen = 0
    while True:
        try:
            message = channel.receive_nowait()
        except trio.WouldBlock:
            return False
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body = message.get("body", b"")
        parts.append(body)
        seen += len(body)
        if not message.get("more_body", False) or (length is not None and seen == length and length > 0):
            return True


async def _read_body(receive: Receive, parts: list[bytes]) -> bytes:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


async def _watch(receive: Receive, scope: trio.CancelScope, watch: _Watch) -> None:
    """Cancel the response when the client disconnects (the body is already in: only that can come), unless
    the final send has begun (then the disconnect is the server's end-of-request notice)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    if not watch.ending:
        scope.cancel()


def _head(status: int, content_type: str, headers: dict[str, str], length: int | None) -> dict[str, Any]:
    pairs = [(b"content-type", content_type.encode("latin-1"))]
    if length is not None:
        pairs.append((b"content-length", str(length).encode("latin-1")))
    for k, v in headers.items():
        if len(v) <= 256 and v.isascii() and v.isprintable() and v == v.strip():  # what herd echoes, mostly
            pairs.append((k.encode("latin-1"), v.encode("ascii")))
        else:
            pairs.append((k.encode("latin-1"), safe_header(v.encode("latin-1", "replace"))))
    return {"type": "http.response.start", "status": status, "headers": pairs}


async def _send_reply(send: Send, reply: Reply, watch: _Watch) -> None:
    body = reply.body
    if isinstance(body, bytes):
        watch.hold_head()
        await send(_head(reply.status, reply.content_type, reply.headers, len(body)))
        watch.end()
        await send({"type": "http.response.body", "body": body})
        return
    await _send_stream(send, reply, body, watch)


async def _send_stream(send: Send, reply: Reply, body: AsyncIterator[bytes], watch: _Watch) -> None:
    await send(_head(reply.status, reply.content_type, reply.headers, None))
    async with aclosing(body) as blocks:  # type: ignore[type-var]  # the relays are async generators
        async for block in blocks:
            await send({"type": "http.response.body", "body": block, "more_body": True})
    watch.end()
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
    watch: _Watch | None = None,
) -> None:
    payload = error_payload(path, status, message, code=code, openai_type=kind, param=param)
    await _send_reply(send, Reply(payload, JSON, headers or {}, status), watch or _Watch())

"""Serving the Quart-Trio app with hypercorn's trio worker, as one child of the app-lifetime nursery.

Two fixes sit between hypercorn and Quart, in an ASGI wrapper:
- Each HTTP request gets an `AsyncExitStack` in `scope["herd.stack"]` that lives exactly as long as the ASGI
  call: handlers put the node slot and the upstream response on it, so they are released when the response
  ends, fails, or the client disconnects, even if Quart never started the body.
- An exception that escapes Quart's own handlers (raised while the response is sent, say) is logged, counted
  (`herd_unexpected_errors_total`) and answered with a 500 in the caller's dialect, with a body, if the status
  line is not out yet; response header values lose any CR/LF/NUL and are bounded, as h11 requires.
- The final body send is shielded. quart-trio cancels each request's nursery as soon as the response is done,
  which can land while hypercorn re-arms its keep-alive idle timer inside that send; the timer is then never
  armed, idle connections never close and graceful shutdown waits the whole `graceful_timeout`.

Slow clients and the connection budget: `herd.web.connections` (imported here, it plugs into hypercorn).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from herd.dialects.errors import error_payload
from herd.reqscope import SCOPE_KEY
from herd.web.connections import ConnectionBudget, default_budget

log = logging.getLogger("herd.web")
MAX_HEADER_BYTES = 8192

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class RequestScoped:
    """ASGI wrapper: per-request exit stack + shielded final send + last-resort error answer (see module
    docstring)."""

    def __init__(self, app: ASGIApp, on_unexpected: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.on_unexpected = on_unexpected

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_final_shielded(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [(k, safe_header(v)) for k, v in message["headers"]]}
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        try:
            async with AsyncExitStack() as stack:
                scope[SCOPE_KEY] = stack
                await self.app(scope, receive, send_final_shielded)
        except Exception as exc:  # escaped Quart's handlers (e.g. while sending): still answer, with a body
            self.on_unexpected()
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
            if started:
                return  # the status line is out: the connection closes, the client sees a cut body
            body = error_payload(
                str(scope.get("path", "")),
                500,
                f"internal error: {type(exc).__name__}",
                code="internal_error",
                openai_type="server_error",
            )
            headers = [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
            ]
            with trio.CancelScope(shield=True):
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": body})


def safe_header(value: bytes) -> bytes:
    """A response header value as h11 accepts it: no CR, LF or NUL (they would split or break the header),
    and bounded (routes bound what they echo; this is the net under them)."""
    if len(value) > MAX_HEADER_BYTES:
        value = value[:MAX_HEADER_BYTES]
    if any(c in value for c in b"\r\n\x00"):
        value = value.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\x00", b"")
    return value.strip()


class WebServer:
    """Service: binds, reports the bound URLs through `task_status`, serves until `stop()` or cancel."""

    def __init__(
        self,
        app: Any,
        *,
        host: str,
        port: int,
        graceful_timeout: float,
        access_log: bool,
        certfile: str | None = None,
        keyfile: str | None = None,
        on_unexpected: Callable[[], None] = lambda: None,
        header_timeout: float = 5.0,
        max_connections: int = 0,
    ) -> None:
        self.app = RequestScoped(app, on_unexpected)
        self.connections = ConnectionBudget(max_connections or default_budget(), header_timeout)
        self.config = HypercornConfig()
        self.config.herd_guard = self.connections  # type: ignore[attr-defined]  # read by herd.web.connections
        # HTTPS when both are given (`herd run --certfile/--keyfile`); hypercorn then reports https:// binds.
        self.config.certfile = certfile
        self.config.keyfile = keyfile
        self.config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
        self.config.graceful_timeout = graceful_timeout
        self.config.keep_alive_timeout = 75.0
        self.config.accesslog = logging.getLogger("herd.access") if access_log else None
        self.config.errorlog = logging.getLogger("herd.web")
        self._stop = trio.Event()
        self.urls: list[str] = []

    def stop(self) -> None:
        """Begin a graceful shutdown: stop accepting, let in-flight responses finish within the grace time."""
        self._stop.set()

    async def run(self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        forward = _Forward(self, task_status)
        await serve(self.app, self.config, shutdown_trigger=self._stop.wait, task_status=forward)  # type: ignore[arg-type]


class _Forward:
    """Records the bound URLs on the server before passing them to the parent's `task_status`."""

    def __init__(self, server: WebServer, status: trio.TaskStatus[list[str]]) -> None:
        self.server = server
        self.status = status

    def started(self, binds: list[str] | None = None) -> None:
        self.server.urls = list(binds or [])
        self.status.started(self.server.urls)

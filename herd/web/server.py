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
Requests an inner layer serves whole (`owned`: the inference fast path, `herd.web.fastpath`, which keeps its own
stack, safe headers and an uncut final send) pass straight through; an exception escaping them is still logged,
counted and answered when it can be.

Slow clients and the connection budget: `herd.web.connections` (handed in by the composition root, which
imports it; it plugs into hypercorn).
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
from herd.validate import safe_header

log = logging.getLogger("herd.web")

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class RequestScoped:
    """ASGI wrapper: per-request exit stack + shielded final send + last-resort error answer (see module
    docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        on_unexpected: Callable[[], None] = lambda: None,
        owned: Callable[[dict[str, Any]], bool] = lambda scope: False,
    ) -> None:
        self.app = app
        self.on_unexpected = on_unexpected
        self.owned = owned  # requests a layer inside serves whole (stack, final send, errors): passed through

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.owned(scope):
            await self._owned(scope, receive, send)
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
            self._unexpected(scope, exc)
            if started:
                return  # the status line is out: the connection closes, the client sees a cut body
            await _answer_500(scope, send, exc)

    async def _owned(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """A request the inner layer serves whole (the fast path): no stack or send wrapper of ours; an
        exception that still escapes (a bug above it, in the guard) is logged, counted and answered if it can be."""
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            self._unexpected(scope, exc)
            try:
                await _answer_500(scope, send, exc)
            except Exception:  # the status line was already out: the connection closes, the body is cut
                log.debug("no 500 for %s: the response had begun", scope.get("path"))

    def _unexpected(self, scope: dict[str, Any], exc: Exception) -> None:
        self.on_unexpected()
        log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)


async def _answer_500(scope: dict[str, Any], send: Callable[[Any], Awaitable[None]], exc: Exception) -> None:
    """The last-resort answer: a 500 with a body in the caller's dialect, sent even while being cancelled."""
    body = error_payload(
        str(scope.get("path", "")),
        500,
        f"internal error: {type(exc).__name__}",
        code="internal_error",
        openai_type="server_error",
    )
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    with trio.CancelScope(shield=True):
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": body})


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
        owned: Callable[[dict[str, Any]], bool] = lambda scope: False,
        connections: Any = None,
    ) -> None:
        self.app = RequestScoped(app, on_unexpected, owned)
        # `herd.web.connections.ConnectionBudget` (built by the composition root, which imports that module and
        # so plugs it into hypercorn): header deadline, connection budget, client links. None: hypercorn's own.
        self.connections = connections
        self.config = HypercornConfig()
        self.config.herd_guard = connections  # type: ignore[attr-defined]  # read by herd.web.connections
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

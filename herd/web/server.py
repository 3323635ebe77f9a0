"""Serving the Quart-Trio app with hypercorn's trio worker, as one child of the app-lifetime nursery.

Two fixes sit between hypercorn and Quart, in an ASGI wrapper:
- Each HTTP request gets an `AsyncExitStack` in `scope["herd.stack"]` that lives exactly as long as the ASGI
  call: handlers put the node slot and the upstream response on it, so they are released when the response
  ends, fails, or the client disconnects, even if Quart never started the body.
- The final body send is shielded. quart-trio cancels each request's nursery as soon as the response is done,
  which can land while hypercorn re-arms its keep-alive idle timer inside that send; the timer is then never
  armed, idle connections never close and graceful shutdown waits the whole `graceful_timeout`.

Slow clients: hypercorn 0.18 has no header timeout (its idle timer, `keep_alive_timeout`, also covers a request
head that trickles in, and `read_timeout` would also cut long streamed responses) and no connection limit. Both
are added in the narrowest place, hypercorn's per-connection handler, by `_GuardedTCPServer`, a subclass that
`hypercorn.trio.run` uses for servers whose config carries a `herd_guard` (others behave exactly as before):
- a request head must be complete within `header_timeout` seconds of the connection opening or of its first
  byte after a keep-alive pause; the keep-alive pause itself keeps `keep_alive_timeout` (75 s);
- at most `Guard.limit` client connections are open; a new one beyond it evicts the oldest connection that has
  no request in progress (idle or still sending its head), or is closed at once if every one is busy.
`raise_open_files_limit` lifts the process's soft RLIMIT_NOFILE to its hard limit (called once by `herd run`);
the default budget is half of what is left after a reserve, since each proxied request also holds a socket to
its node.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from math import inf
from typing import Any

import hypercorn.trio.run as hypercorn_run
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, RawData, Updated
from hypercorn.trio import serve
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer

from herd.reqscope import SCOPE_KEY

log = logging.getLogger("herd.web")

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class RequestScoped:
    """ASGI wrapper: per-request exit stack + shielded final send (see module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_final_shielded(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        async with AsyncExitStack() as stack:
            scope[SCOPE_KEY] = stack
            await self.app(scope, receive, send_final_shielded)


def raise_open_files_limit() -> int:
    """Lift the soft open-files limit to the hard one; the soft limit in force afterwards."""
    try:
        import resource
    except ImportError:  # Windows
        return 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if sys.platform == "darwin":
        target = min(target, 10240)  # OPEN_MAX
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        log.info("open files limit raised from %d to %d", soft, target)
        return target
    return soft


def default_budget() -> int:
    """Client connections the open-files limit affords: each may hold a socket to a node too."""
    try:
        import resource
    except ImportError:
        return 256
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(16, (min(soft, 1 << 20) - 128) // 2)


class Guard:
    """The router's client connections against a budget, and the header deadline (see module docstring)."""

    def __init__(self, limit: int, header_timeout: float) -> None:
        self.limit = limit
        self.header_timeout = header_timeout
        self.open: dict[_GuardedTCPServer, None] = {}  # insertion order: oldest first
        self.evicted = self.refused = 0

    def admit(self, conn: _GuardedTCPServer) -> bool:
        if len(self.open) >= self.limit:
            victim = next((c for c in self.open if c.waiting), None)
            if victim is None:
                self.refused += 1
                return False
            self.open.pop(victim)
            victim.evict()
            self.evicted += 1
        self.open[conn] = None
        return True


class _GuardedTCPServer(TCPServer):
    """hypercorn's connection handler plus the header deadline and the connection budget."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.guard: Guard | None = getattr(self.config, "herd_guard", None)
        self.waiting = True  # no request in progress: before a head is complete, or between requests
        self._between = False  # idle after a response (keep-alive timer), as opposed to awaiting a head
        self._evicted = False
        self._timer: trio.CancelScope | None = None

    async def run(self) -> None:
        if self.guard is None:
            return await super().run()
        if not self.guard.admit(self):
            await trio.aclose_forcefully(self.stream)
            return None
        try:
            return await super().run()
        finally:
            self.guard.open.pop(self, None)

    def evict(self) -> None:
        self._evicted = True
        if self._timer is not None:
            self._timer.cancel()

    async def protocol_send(self, event: Any) -> None:
        if isinstance(event, Updated):
            self.waiting = self._between = event.idle
        await super().protocol_send(event)

    async def _idle_timeout(self) -> None:
        timeout = self.config.keep_alive_timeout
        if self.guard is not None and not self._between:
            timeout = self.guard.header_timeout
        with trio.CancelScope() as self._timer:
            if self._evicted:
                self._timer.cancel()
            with trio.move_on_after(timeout):
                await self.context.terminated.wait()
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()

    async def _read_data(self) -> None:
        while True:
            try:
                with trio.fail_after(self.config.read_timeout or inf):
                    data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                break
            if data and self._between and self.guard is not None:
                self._between = False  # a new request begins: its head gets the header deadline
                await self.idle_task.restart(self._task_group, self._idle_timeout)
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())


hypercorn_run.TCPServer = _GuardedTCPServer  # type: ignore[assignment, misc]  # see the module docstring


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
        header_timeout: float = 5.0,
        max_connections: int = 0,
    ) -> None:
        self.app = RequestScoped(app)
        self.guard = Guard(max_connections or default_budget(), header_timeout)
        self.config = HypercornConfig()
        self.config.herd_guard = self.guard  # type: ignore[attr-defined]  # read by _GuardedTCPServer
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

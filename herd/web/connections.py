"""Slow clients, for `herd.web.server`: hypercorn 0.18 has no header timeout (its idle timer, `keep_alive_timeout`, also covers a request
head that trickles in, and `read_timeout` would also cut long streamed responses) and no connection limit. Both
are added in the narrowest place, hypercorn's per-connection handler, by `_GuardedTCPServer`, a subclass that
`hypercorn.trio.run` uses for servers whose config carries a `herd_guard` (others behave exactly as before):
- a request head must be complete within `header_timeout` seconds of the connection opening or of its first
  byte after a keep-alive pause; the keep-alive pause itself keeps `keep_alive_timeout` (75 s);
- at most `ConnectionBudget.limit` client connections are open; a new one beyond it evicts the oldest connection that has
  no request in progress (idle or still sending its head), or is closed at once if every one is busy.
- a client that closes or breaks its connection is reported to `herd.reqscope.ClientLinks`, which cancels what
  the inference fast path runs for it (the disconnect signal without a watcher task per request), and a head
  the fast path marks (its whole body follows at once) is written together with that body: one send, not two;
`raise_open_files_limit` lifts the process's soft RLIMIT_NOFILE to its hard limit (called once by `herd run`);
the default budget is half of what is left after a reserve, since each proxied request also holds a socket to
its node.
"""

from __future__ import annotations

import logging
import sys
from math import inf
from typing import Any

import hypercorn.trio.run as hypercorn_run
import trio
from hypercorn.events import Closed, RawData, Updated
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.utils import parse_socket_addr

from herd.reqscope import ClientLinks

log = logging.getLogger("herd.web")


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


class ConnectionBudget:
    """The router's client connections against a budget, and the header deadline (see module docstring)."""

    def __init__(self, limit: int, header_timeout: float, links: ClientLinks | None = None) -> None:
        self.limit = limit
        self.header_timeout = header_timeout
        self.links = links if links is not None else ClientLinks()
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
        self.guard: ConnectionBudget | None = getattr(self.config, "herd_guard", None)
        self.waiting = True  # no request in progress: before a head is complete, or between requests
        self._between = False  # idle after a response (keep-alive timer), as opposed to awaiting a head
        self._evicted = False
        self._timer: trio.CancelScope | None = None
        self.client: tuple[str, int] | None = None
        self._held = b""  # a response head waiting for its body (`ClientLinks.hold_head`)
        # The one timer of a guarded connection (see `_idle_timeout`): its deadline, whether a request is in
        # progress (no deadline then), the event that ends a request's wait, and whether the connection ended.
        self._deadline = inf
        self._active = False
        self._resumed = trio.Event()
        self._ended = False

    async def run(self) -> None:
        if self.guard is None:
            return await super().run()
        try:  # the peer's address as hypercorn puts it in each request's ASGI scope (`client`)
            sock = getattr(self.stream, "transport_stream", self.stream).socket
            self.client = parse_socket_addr(sock.family, sock.getpeername())
        except (OSError, AttributeError):
            self.client = None
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
        if isinstance(event, RawData):  # hypercorn's own, plus a held head and noticing a client that is gone
            data = event.data
            if self._held:
                data, self._held = self._held + data, b""
            elif self.guard is not None and self.guard.links.take_hold(self.client):
                self._held = bytes(data)  # the fast path's response head: it goes out with its body, next
                return
            if data:  # h11's end of a Content-Length body is empty: nothing to write, no lock to take
                await self._write(data)
            return
        if self._held:  # never leave a held head behind
            data, self._held = self._held, b""
            await self._write(data)
        if isinstance(event, Updated):
            self.waiting = self._between = event.idle
            if self.guard is not None:  # one timer per connection: move its deadline, no task per request
                if event.idle:
                    self._active = False
                    self._arm(trio.current_time() + self.config.keep_alive_timeout)
                    self._resumed.set()
                else:
                    self._active = True
                    self._resumed = trio.Event()
                    self._arm(inf)
                return
        elif isinstance(event, Closed):
            self._end()
        await super().protocol_send(event)

    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        if self._timer is not None:
            self._timer.deadline = inf if self._active else deadline  # a running request's wait has none

    def _end(self) -> None:
        """The connection is over (the client's end of it, or the server's): the timer stops waiting; it closes
        what is left unless a request is still running."""
        self._ended = True
        self._resumed.set()
        if self._timer is not None:
            self._timer.cancel()

    async def _idle_timeout(self) -> None:
        if self.guard is None:  # hypercorn's own timer (restarted per request)
            with trio.move_on_after(self.config.keep_alive_timeout):
                await self.context.terminated.wait()
            with trio.CancelScope(shield=True):
                await self._initiate_server_close()
            return
        # A guarded connection has one timer for its whole life, started by hypercorn when the connection opens
        # (hypercorn restarts a task per request: a task start and a cancellation each time). Its deadline moves
        # with the connection's state: the header deadline while a head is awaited, none while a request is in
        # progress (the server's shutdown waits for it too), `keep_alive_timeout` between requests.
        self._arm(trio.current_time() + self.guard.header_timeout)
        while not self._ended:
            with trio.CancelScope(deadline=inf if self._active else self._deadline) as timer:
                self._timer = timer
                if self._evicted:
                    timer.cancel()
                if self._active:
                    await self._resumed.wait()
                else:
                    await self.context.terminated.wait()
            self._timer = None
            if self._evicted or self._ended:
                break
            if self._active:
                continue  # a request began as the deadline passed: it is not cut
            if timer.cancelled_caught or self.context.terminated.is_set():
                break  # idle past its deadline, or the server is shutting down
        if self._ended and self._active:
            return  # the client left mid-request: its end closes the connection, as hypercorn's timer has it
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()

    async def _read_data(self) -> None:
        while True:
            try:
                with trio.fail_after(self.config.read_timeout or inf):
                    data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                break
            starting = bool(data) and self._between and self.guard is not None
            await self.protocol.handle(RawData(bytes(data)))
            if starting and self._between and self.guard is not None:
                # a new request began but its head is not complete yet (a complete one would have ended the
                # keep-alive wait): the rest of the head gets the header deadline
                self._between = False
                self._arm(trio.current_time() + self.guard.header_timeout)
            if data == b"":
                break
        self._gone()
        await self.protocol.handle(Closed())
        self._end()

    async def _write(self, data: bytes) -> None:
        lock = self.send_lock
        try:
            lock.acquire_nowait()  # free, the usual case: no extra trip through the scheduler per write
        except trio.WouldBlock:
            await lock.acquire()
        try:
            with trio.CancelScope(shield=True):
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._gone()
            await self.protocol.handle(Closed())
        finally:
            lock.release()

    def _gone(self) -> None:
        """The client closed or broke the connection: cancel what the fast path runs for it (`ClientLinks`)."""
        if self.guard is not None and self.client is not None:
            self.guard.links.left(self.client)


hypercorn_run.TCPServer = _GuardedTCPServer  # type: ignore[assignment, misc]  # see the module docstring

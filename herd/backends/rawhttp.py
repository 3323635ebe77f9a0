"""A lean HTTP/1.1 upstream client on Trio sockets and h11: the proxy's hot path without httpx's per-request pool
scan, and with a well-kept parser (the one hypercorn uses) guarding the protocol's edge cases.

Implements `herd.backends.upstream.Upstream` for plain `http://` backends (Ollama, llama.cpp on a LAN): one
keep-alive connection pool per host:port, the request written in one send, h11 framing the response (chunked,
fixed-length or read-to-close), body bytes passed through untouched, one chunk of a chunked body per item. A
connection goes back to the pool only when its response was read to the end and both sides may go on; anything
else (error, cancel, client gone) closes it, which is also how the backend learns the client left. A pooled
connection the server already closed is retried once on a fresh one, and only when not a single response byte
had arrived. h11's complaints become `UpstreamError`: "protocol" before the body, "read" inside it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import h11
import trio

from herd.backends.upstream import UpstreamError
from herd.config import UpstreamConfig

RECV = 65536
MAX_HEAD = 64 * 1024
_LOST = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class _StaleConnection(Exception):
    """A pooled connection was closed by the server before it answered."""


class _Conn:
    __slots__ = ("h11", "heard", "stream")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.heard = False  # any byte of the current response arrived

    async def event(self) -> Any:
        """The next h11 event, reading as needed (EOF is fed to h11, which decides what it means)."""
        conn = self.h11
        while (event := conn.next_event()) is h11.NEED_DATA:
            data = await self.stream.receive_some(RECV)
            self.heard = self.heard or bool(data)
            conn.receive_data(data)
        return event

    def reusable(self) -> bool:
        conn = self.h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return True
        return False


class _Response:
    __slots__ = ("_carry", "_chunked", "_conn", "_starved", "complete", "status")

    def __init__(self, conn: _Conn, status: int, chunked: bool) -> None:
        self._conn = conn
        self._chunked = chunked
        self._carry: list[bytes] = []  # the start of a chunk `ready` took but could not finish
        self.status = status
        self.complete = False
        self._starved = False  # h11 said NEED_DATA and nothing was fed since: asking again would say the same

    def ready(self) -> bytes:
        """Every whole chunk h11 can frame from what is already buffered, joined; no I/O."""
        conn = self._conn.h11
        if self.complete or not conn.trailing_data[0]:  # nothing buffered: the common case between tokens
            return b""
        out: list[bytes] = []
        try:
            while not self.complete:
                event = conn.next_event()
                if type(event) is h11.Data:
                    if self._chunked and not event.chunk_end:
                        self._carry.append(event.data)
                        continue
                    out += [*self._carry, event.data]
                    self._carry = []
                elif type(event) is h11.EndOfMessage:
                    out += self._carry
                    self._carry = []
                    self.complete = True
                    break
                elif event is h11.NEED_DATA:
                    self._starved = True
                    break
                else:
                    raise UpstreamError(
                        "protocol", f"unexpected {type(event).__name__} inside a response body"
                    )
        except h11.RemoteProtocolError as exc:
            raise UpstreamError("read", f"broken response body: {exc}") from exc
        return b"".join(out)

    def done(self) -> bool:
        return self.complete

    def chunks(self) -> AsyncIterator[bytes]:
        return self

    def __aiter__(self) -> _Response:
        return self

    async def __anext__(self) -> bytes:
        if self.complete:
            raise StopAsyncIteration
        parts, self._carry = self._carry, []
        conn, stream = self._conn.h11, self._conn.stream  # the event loop inlined: this runs once per token
        starved, self._starved = self._starved, False  # `ready` just heard NEED_DATA: read before asking h11
        try:
            while True:
                if starved:
                    conn.receive_data(await stream.receive_some(RECV))
                event = conn.next_event()
                if starved := event is h11.NEED_DATA:
                    continue
                if type(event) is h11.Data:
                    if self._chunked and not event.chunk_end:  # a chunk split across reads: keep it whole
                        parts.append(event.data)
                        continue
                    if parts:
                        parts.append(event.data)
                        return b"".join(parts)
                    return bytes(event.data)
                if type(event) is h11.EndOfMessage:
                    self.complete = True
                    if parts:
                        return b"".join(parts)
                    raise StopAsyncIteration
                raise UpstreamError("protocol", f"unexpected {type(event).__name__} inside a response body")
        except h11.RemoteProtocolError as exc:
            raise UpstreamError("read", f"broken response body: {exc}") from exc
        except _LOST as exc:
            raise UpstreamError("read", f"connection lost: {exc}") from exc

    async def read(self) -> bytes:
        return b"".join([data async for data in self])


@lru_cache(
    maxsize=1024
)  # a fleet has a handful of node URLs; parsing one costs more than the rest of the head
def _target(url: str) -> tuple[tuple[str, int], str, str]:
    """(host, port), request target and Host header of a backend URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise UpstreamError("connect", f"unsupported backend URL {url!r} (plain http only)")
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return (parts.hostname, parts.port or 80), target, parts.netloc


def _request(method: str, url: str, body: bytes, content_type: str, headers: Mapping[str, str] | None) -> Any:
    key, target, netloc = _target(url)
    head = [("Host", netloc), ("Content-Type", content_type)]
    head.append(("Content-Length", str(len(body))))
    if headers:
        head += [(k, v) for k, v in headers.items() if not {"\r", "\n"} & set(k + v)]
    return key, h11.Request(method=method, target=target, headers=head)


class _Exchange:
    """`RawUpstream.stream`'s context manager (a class: this runs once per proxied request)."""

    __slots__ = ("_body", "_conn", "_key", "_request", "_resp", "_up")

    def __init__(
        self,
        up: RawUpstream,
        method: str,
        url: str,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None,
    ) -> None:
        self._up = up
        self._body = body
        self._key, self._request = _request(method, url, body, content_type, headers)

    async def __aenter__(self) -> _Response:
        self._conn, self._resp = await self._up._open(self._key, self._request, self._body)
        return self._resp

    async def __aexit__(self, *exc: object) -> None:
        await self._up._close(self._key, self._conn, self._resp)


class RawUpstream:
    """`Upstream` over Trio sockets and h11 with per-host keep-alive pools."""

    def __init__(self, cfg: UpstreamConfig) -> None:
        self.cfg = cfg
        self._idle: dict[tuple[str, int], deque[_Conn]] = {}

    async def _connect(self, host: str, port: int) -> _Conn:
        try:
            with trio.fail_after(self.cfg.connect_timeout):
                stream = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as exc:
            raise UpstreamError("connect", f"cannot connect to {host}:{port}: {exc}") from exc
        stream.setsockopt(6, 1, 1)  # TCP_NODELAY: small JSON lines must not wait for Nagle
        return _Conn(stream)

    async def _exchange(self, conn: _Conn, request: h11.Request, body: bytes, reused: bool) -> _Response:
        try:
            out = conn.h11.send(request) or b""
            out += (conn.h11.send(h11.Data(data=body)) or b"") if body else b""
            out += conn.h11.send(h11.EndOfMessage()) or b""
            conn.heard = False
            await conn.stream.send_all(out)
            while type(event := await conn.event()) is not h11.Response:
                if type(event) is not h11.InformationalResponse:  # 1xx: the real answer follows
                    raise h11.RemoteProtocolError(f"{type(event).__name__} before a response")
        except (h11.RemoteProtocolError, *_LOST) as exc:
            if reused and not conn.heard:
                raise _StaleConnection from exc
            raise UpstreamError("protocol", f"no valid response: {exc}") from exc
        chunked = any(k == b"transfer-encoding" and b"chunked" in v.lower() for k, v in event.headers)
        return _Response(conn, event.status_code, chunked)

    def stream(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> _Exchange:
        return _Exchange(self, method, url, body or b"", content_type, headers)

    async def _open(
        self, key: tuple[str, int], request: h11.Request, payload: bytes
    ) -> tuple[_Conn, _Response]:
        pool = self._idle.get(key)
        conn = pool.pop() if pool else None
        reused = conn is not None
        if conn is None:
            conn = await self._connect(*key)
        try:
            try:
                return conn, await self._exchange(conn, request, payload, reused)
            except _StaleConnection:
                await trio.aclose_forcefully(conn.stream)
                conn = await self._connect(*key)
                return conn, await self._exchange(conn, request, payload, False)
        except BaseException:
            await trio.aclose_forcefully(conn.stream)
            raise

    async def _close(self, key: tuple[str, int], conn: _Conn, resp: _Response) -> None:
        """Back to the pool when the response was read to its end and both sides may go on; else closed."""
        if resp.complete and conn.reusable():
            idle = self._idle.setdefault(key, deque())
            idle.append(conn)
            if len(idle) > self.cfg.max_keepalive:
                await trio.aclose_forcefully(idle.popleft().stream)
        else:
            await trio.aclose_forcefully(conn.stream)

    async def get(self, url: str) -> tuple[int, bytes]:
        async with self.stream("GET", url) as resp:
            return resp.status, await resp.read()

    async def aclose(self) -> None:
        pools, self._idle = self._idle, {}
        for pool in pools.values():
            for conn in pool:
                await trio.aclose_forcefully(conn.stream)

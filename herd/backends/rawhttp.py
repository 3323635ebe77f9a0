"""A lean HTTP/1.1 upstream client on Trio sockets: the proxy's hot path without httpx's per-request pool scan.

Implements `herd.backends.upstream.Upstream` for plain `http://` backends (Ollama, llama.cpp on a LAN): one
keep-alive connection pool per host:port, the request written in one send, the response head parsed by hand,
the body decoded as chunked, fixed-length or read-to-close, bytes passed through untouched. A connection goes
back to the pool only when its response was read to the end; anything else (error, cancel, client gone) closes
it, which is also how the backend learns the client left. A pooled connection the server already closed is
retried once on a fresh one, and only when not a single response byte had arrived.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio

from herd.backends.upstream import UpstreamError, UpstreamResponse
from herd.config import UpstreamConfig

RECV = 65536
MAX_HEAD = 64 * 1024


class _Conn:
    __slots__ = ("buf", "stream")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def fill(self) -> bool:
        """Read more bytes into the buffer; False at EOF."""
        data = await self.stream.receive_some(RECV)
        if not data:
            return False
        self.buf += data
        return True


class _StaleConnection(Exception):
    """A pooled connection was closed by the server before it answered."""


class _Response:
    __slots__ = ("_conn", "_length", "_mode", "complete", "keep_alive", "status")

    def __init__(self, conn: _Conn, status: int, mode: str, length: int, keep_alive: bool) -> None:
        self._conn = conn
        self.status = status
        self._mode = mode  # "chunked" | "length" | "close"
        self._length = length
        self.keep_alive = keep_alive
        self.complete = False

    def chunks(self) -> AsyncIterator[bytes]:
        return self

    def __aiter__(self) -> _Response:
        return self

    async def __anext__(self) -> bytes:
        try:
            data = await self._next()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise UpstreamError("read", f"connection lost: {exc}") from exc
        if data is None:
            raise StopAsyncIteration
        return data

    async def read(self) -> bytes:
        return b"".join([data async for data in self])

    async def _next(self) -> bytes | None:
        if self.complete:
            return None
        if self._mode == "length":
            return await self._fixed()
        if self._mode == "chunked":
            return await self._chunk()
        return await self._until_close()

    async def _fixed(self) -> bytes | None:
        conn = self._conn
        if not self._length:
            self.complete = True
            return None
        if not conn.buf and not await conn.fill():
            raise UpstreamError("read", f"connection closed with {self._length} bytes of the body missing")
        data, conn.buf = conn.buf[: self._length], conn.buf[self._length :]
        self._length -= len(data)
        return data

    async def _chunk(self) -> bytes | None:
        conn = self._conn
        while (eol := conn.buf.find(b"\r\n")) < 0:
            if not await conn.fill():
                raise UpstreamError("read", "connection closed inside a chunked body")
        try:
            size = int(conn.buf[:eol].split(b";", 1)[0], 16)
        except ValueError as exc:
            raise UpstreamError("protocol", "bad chunk size line") from exc
        if size == 0:  # last chunk; trailers (normally none) end with an empty line
            start = eol + 2
            while True:
                if conn.buf.startswith(b"\r\n", start):
                    conn.buf = conn.buf[start + 2 :]
                    break
                end = conn.buf.find(b"\r\n\r\n", start)
                if end >= 0:
                    conn.buf = conn.buf[end + 4 :]
                    break
                if not await conn.fill():
                    raise UpstreamError("read", "connection closed inside the chunked trailer")
            self.complete = True
            return None
        need = eol + 2 + size + 2
        while len(conn.buf) < need:
            if not await conn.fill():
                raise UpstreamError("read", "connection closed inside a chunk")
        data = conn.buf[eol + 2 : eol + 2 + size]
        conn.buf = conn.buf[need:]
        return data

    async def _until_close(self) -> bytes | None:
        conn = self._conn
        if not conn.buf and not await conn.fill():
            self.complete = True
            self.keep_alive = False
            return None
        data, conn.buf = conn.buf, b""
        return data


def _parse_head(head: bytes) -> tuple[int, str, int, bool]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise UpstreamError("protocol", f"not an HTTP/1.x response: {lines[0][:80]!r}")
    try:
        status = int(parts[1])
    except ValueError as exc:
        raise UpstreamError("protocol", "bad status line") from exc
    length, chunked, keep_alive = -1, False, parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            v = value.strip().lower()
            keep_alive = v != b"close" and (keep_alive or v == b"keep-alive")
    if chunked:
        return status, "chunked", 0, keep_alive
    if length >= 0:
        return status, "length", length, keep_alive
    if status in (204, 304) or 100 <= status < 200:
        return status, "length", 0, keep_alive
    return status, "close", 0, False


class RawUpstream:
    """`Upstream` over raw Trio sockets with per-host keep-alive pools."""

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

    async def _exchange(self, conn: _Conn, request: bytes, reused: bool) -> _Response:
        try:
            await conn.stream.send_all(request)
            while (end := conn.buf.find(b"\r\n\r\n")) < 0:
                if len(conn.buf) > MAX_HEAD:
                    raise UpstreamError("protocol", "response head too large")
                if not await conn.fill():
                    if reused and not conn.buf:
                        raise _StaleConnection
                    raise UpstreamError("protocol", "connection closed before a response")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            if reused and not conn.buf:
                raise _StaleConnection from exc
            raise UpstreamError("protocol", f"connection lost: {exc}") from exc
        head, conn.buf = conn.buf[:end], conn.buf[end + 4 :]
        return _Response(conn, *_parse_head(head))

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[UpstreamResponse]:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise UpstreamError("connect", f"unsupported backend URL {url!r} (plain http only)")
        host, port = parts.hostname, parts.port or 80
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        payload = body or b""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items() if not {"\r", "\n"} & set(k + v))
        request = (
            f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: */*\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n{extra}\r\n"
        ).encode("latin-1") + payload
        key = (host, port)
        pool = self._idle.get(key)
        conn = pool.pop() if pool else None
        reused = conn is not None
        if conn is None:
            conn = await self._connect(host, port)
        try:
            try:
                resp = await self._exchange(conn, request, reused)
            except _StaleConnection:
                await trio.aclose_forcefully(conn.stream)
                conn = await self._connect(host, port)
                resp = await self._exchange(conn, request, False)
        except BaseException:
            await trio.aclose_forcefully(conn.stream)
            raise
        try:
            yield resp
        finally:
            if resp.complete and resp.keep_alive and not conn.buf:
                self._idle.setdefault(key, deque()).append(conn)
                if len(self._idle[key]) > self.cfg.max_keepalive:
                    await trio.aclose_forcefully(self._idle[key].popleft().stream)
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

"""The lean upstream client against scripted raw HTTP servers: framing, pooling, stale connections, cuts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio

from herd.backends.rawhttp import RawUpstream
from herd.backends.upstream import UpstreamError
from herd.config import UpstreamConfig

Handler = Callable[[trio.SocketStream, int], Awaitable[None]]


async def serve(nursery: trio.Nursery, handler: Handler) -> tuple[str, list[int]]:
    """A TCP server that calls `handler(stream, connection_number)`; returns its URL and accepted count."""
    accepted: list[int] = []

    async def on_conn(stream: trio.SocketStream) -> None:
        accepted.append(len(accepted))
        await handler(stream, len(accepted) - 1)

    listeners = await nursery.start(partial(trio.serve_tcp, on_conn, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    return f"http://127.0.0.1:{port}", accepted


async def read_request(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += await stream.receive_some(65536)
    return head + b"\r\n\r\n" + body


async def trickle(stream: trio.SocketStream, data: bytes) -> None:
    """Send byte by byte so every parser state meets a split read."""
    for i in range(len(data)):
        await stream.send_all(data[i : i + 1])


@pytest.fixture
async def client():
    up = RawUpstream(UpstreamConfig(connect_timeout=2))
    yield up
    await up.aclose()


async def test_chunked_with_extensions_and_trailers_split_everywhere(
    nursery: trio.Nursery, client: RawUpstream
) -> None:
    async def handler(stream: trio.SocketStream, _: int) -> None:
        while req := await read_request(stream):
            assert req.startswith(b"POST /api/chat HTTP/1.1\r\n") and req.endswith(b'{"a":1}')
            body = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: y\r\n\r\n"
            await trickle(stream, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)

    url, accepted = await serve(nursery, handler)
    for _ in range(2):
        async with client.stream("POST", url + "/api/chat", b'{"a":1}') as resp:
            assert resp.status == 200
            assert [c async for c in resp.chunks()] == [b"hello", b" ", b"world"]
    assert accepted == [0]  # the second request reused the pooled connection


async def test_content_length_and_close_delimited(nursery: trio.Nursery, client: RawUpstream) -> None:
    async def handler(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        if n == 0:
            await stream.send_all(b'HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\n\r\n{"error":"x"}')
            await read_request(stream)
        await stream.send_all(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
        await stream.aclose()

    url, accepted = await serve(nursery, handler)
    status, body = await client.get(url + "/x")
    assert (status, body) == (404, b'{"error":"x"}')
    status, body = await client.get(url + "/y")
    assert (status, body) == (200, b"until close")
    assert accepted == [0]
    status, body = await client.get(url + "/z")  # close-delimited: that connection was not pooled
    assert accepted == [0, 1]


async def test_stale_pooled_connection_is_retried_once(nursery: trio.Nursery, client: RawUpstream) -> None:
    async def handler(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await stream.aclose()  # keep-alive promised, then the server goes away (idle timeout)

    url, accepted = await serve(nursery, handler)
    assert await client.get(url + "/a") == (200, b"ok")
    await trio.sleep(0.05)
    assert await client.get(url + "/b") == (200, b"ok")
    assert accepted == [0, 1]


async def test_cut_body_is_an_error_and_the_connection_is_dropped(
    nursery: trio.Nursery, client: RawUpstream
) -> None:
    async def handler(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        if n == 0:
            await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
            await stream.aclose()
        else:
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
            await stream.aclose()

    url, _ = await serve(nursery, handler)
    for _ in range(2):
        with pytest.raises(UpstreamError) as info:
            async with client.stream("POST", url + "/", b"{}") as resp:
                await resp.read()
        assert info.value.kind == "read"


async def test_leaving_early_closes_the_connection(nursery: trio.Nursery, client: RawUpstream) -> None:
    closed = trio.Event()

    async def handler(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        assert await stream.receive_some(10) == b""  # the client hung up: the backend can stop generating
        closed.set()

    url, _ = await serve(nursery, handler)
    async with client.stream("POST", url + "/", b"{}") as resp:
        async for chunk in resp.chunks():
            assert chunk == b"hi"
            break
    with trio.fail_after(5):  # hang guard only
        await closed.wait()


async def test_connect_errors_and_bad_urls(client: RawUpstream) -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UpstreamError) as info:
        await client.get(f"http://127.0.0.1:{port}/")
    assert info.value.kind == "connect"
    with pytest.raises(UpstreamError):
        await client.get("https://example.invalid/")


async def test_garbage_response_is_a_protocol_error(nursery: trio.Nursery, client: RawUpstream) -> None:
    async def handler(stream: trio.SocketStream, n: int) -> None:
        await read_request(stream)
        await stream.send_all(b"SSH-2.0-OpenSSH\r\n\r\n")

    url, _ = await serve(nursery, handler)
    with pytest.raises(UpstreamError) as info:
        await client.get(url + "/")
    assert info.value.kind == "protocol"

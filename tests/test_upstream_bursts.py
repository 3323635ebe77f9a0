"""Bursts on the h11 upstream client: what a node already sent is handed over in one block (`ready`), so the
relay sends a burst of lines with one send, and the connection still goes back to the pool."""

from __future__ import annotations

from functools import partial

import trio

from herd.backends.rawhttp import RawUpstream
from herd.config import UpstreamConfig
from herd.routing.lines import LineStream


async def test_ready_hands_over_the_buffered_chunks_and_the_end(nursery: trio.Nursery) -> None:
    accepted: list[int] = []

    async def on_conn(stream: trio.SocketStream) -> None:
        accepted.append(1)
        while True:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(65536)
            body = b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in (b'{"n":1}\n', b'{"n":2}\n', b'{"n":3}\n'))
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"
            )

    listeners = await nursery.start(partial(trio.serve_tcp, on_conn, 0, host="127.0.0.1"))
    url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/api/chat"
    up = RawUpstream(UpstreamConfig(connect_timeout=2))
    try:
        for _ in range(2):
            async with up.stream("POST", url, b"{}") as resp:
                lines = LineStream(resp.chunks(), 10.0, resp.ready)
                await lines.prime()
                assert await lines.next_batch() == b'{"n":1}\n{"n":2}\n{"n":3}\n'  # one block, one send
                assert await lines.next_batch() is None
        assert accepted == [1]  # read to the end: the connection was pooled and reused
    finally:
        await up.aclose()

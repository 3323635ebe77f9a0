"""The floor for `bench/proxy.py`: a bare pass-through on herd's own stack, nothing else.

    python -m bench.bare --upstream http://127.0.0.1:PORT [--port 0]

A raw ASGI app served by hypercorn's trio worker (as herd is) that relays every request's bytes to one node over
a keep-alive pool of h11 connections and streams the node's body back as it arrives, one send per received
block. No routing, no parsing, no records: what herd costs above this is herd's own overhead. Prints its URL as
the first stdout line once it accepts connections; serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
PASSED = {b"content-type", b"content-length"}


class _Conn:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.h11.receive_data(await self.stream.receive_some(65536))


class Bare:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[_Conn] = []
        self.netloc = f"{host}:{port}".encode()

    async def _conn(self) -> _Conn:
        if self.idle:
            return self.idle.pop()
        stream = await trio.open_tcp_stream(self.host, self.port)
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Conn(stream)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        conn = await self._conn()
        ok = False
        try:
            target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
            headers = [(b"host", self.netloc), (b"content-type", b"application/json")]
            headers.append((b"content-length", str(len(body)).encode()))
            out = conn.h11.send(h11.Request(method=scope["method"], target=target, headers=headers))
            out += conn.h11.send(h11.Data(data=body)) + conn.h11.send(h11.EndOfMessage())
            await conn.stream.send_all(out)
            resp = await conn.next_event()
            passed = [(k, v) for k, v in resp.headers if k in PASSED]
            await send({"type": "http.response.start", "status": resp.status_code, "headers": passed})
            while type(event := await conn.next_event()) is h11.Data:
                await send({"type": "http.response.body", "body": bytes(event.data), "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            ok = conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
        finally:
            if ok:
                conn.h11.start_next_cycle()
                self.idle.append(conn)
            else:
                await trio.aclose_forcefully(conn.stream)


async def main_async(app: Bare, port: int) -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.keep_alive_timeout = 75.0
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        binds = await nursery.start(
            lambda task_status: serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)
        )  # type: ignore[arg-type]
        print(binds[0], flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                stop.set()
                break


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__)
    parser.add_argument("--upstream", required=True, help="the node's base URL, http://host:port")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    host, port = args.upstream.removeprefix("http://").rstrip("/").split(":")
    trio.run(main_async, Bare(host, int(port)), args.port)


if __name__ == "__main__":
    main()

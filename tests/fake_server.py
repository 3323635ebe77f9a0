"""The shared shell of the test fakes (fake Ollama, fake llama.cpp, fake media servers): a raw ASGI app served by
hypercorn's trio worker on `bind` (127.0.0.1:0 by default) inside the test's nursery, answering lifespan itself
and handing each request's whole body to `handle`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class FakeServer:
    url = ""
    bind = "127.0.0.1:0"

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """`await nursery.start(fake.run)` returns the URL it listens on."""
        config = Config()
        config.bind = [self.bind]
        config.loglevel = "WARNING"
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, self, config)
            self.url = binds[0]
            task_status.started(self.url)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            return await send({"type": "lifespan.shutdown.complete"})
        raw = b""
        while (msg := await receive())["type"] == "http.request":
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        else:
            return  # the client left before sending its whole body
        await self.handle(scope, raw, receive, send)

    async def handle(self, scope: Message, raw: bytes, receive: Receive, send: Send) -> None:
        raise NotImplementedError

"""What an inference handler sees of a request and what it answers, without any web framework.

`herd.web.fastpath` (a raw ASGI dispatcher between the guard and the Quart app) builds one `Call` per request
from the ASGI scope and the body it read, calls the route's handler (`herd.inference.ollama`, `.openai`,
`.responses`), and sends the `Reply`: a whole body in one send, or a stream of byte blocks, one send each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from herd.reqscope import request_stack

JSON = "application/json; charset=utf-8"
NDJSON = "application/x-ndjson"
EVENTS = "text/event-stream; charset=utf-8"


@dataclass(slots=True)
class Call:
    """One request: its ASGI scope (the request's exit stack and record live there, its headers as the server
    gave them) and the whole body."""

    scope: dict[str, Any]
    raw: bytes

    def header(self, name: bytes) -> str | None:
        """The first value of header `name` (lower case), as Latin-1 text; a handler asks for two or three, so a
        scan beats building a mapping of them all."""
        for key, value in self.scope["headers"]:
            if key.lower() == name:
                return str(value.decode("latin-1"))
        return None

    @property
    def stack(self) -> AsyncExitStack:
        return request_stack(self.scope)


@dataclass(slots=True)
class Reply:
    body: bytes | AsyncIterator[bytes]  # an async iterator streams: one send per block
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


def events(body: AsyncIterator[bytes], headers: dict[str, str]) -> Reply:
    """A server-sent event stream (OpenAI, Anthropic callers)."""
    return Reply(body, EVENTS, {**headers, "Cache-Control": "no-cache"})

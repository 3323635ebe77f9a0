"""The upstream client interface: how routing talks to a backend, whatever does the HTTP underneath.

`herd.routing.proxy` opens `stream()` on a node for every proxied request and reads raw body chunks; one-shot
calls (`/api/show`, pre-warm loads) read the whole body. Failures come out as `UpstreamError` with a kind
(connect, protocol, read, idle), so the retry logic never sees a transport's own types. Timeouts are the
caller's cancel scopes. The implementation in use is `herd.backends.rawhttp.RawUpstream` (one per process).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class UpstreamError(Exception):
    """A backend could not be reached or broke the connection. `kind`: connect, protocol, read."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class UpstreamResponse(Protocol):
    status: int

    def chunks(self) -> AsyncIterator[bytes]: ...

    def ready(self) -> bytes:
        """Body bytes already received and framed, without waiting (b"" if none): lets a relay send a burst of
        lines in one go instead of one send per chunk."""
        ...

    def done(self) -> bool:
        """The whole body has been received and framed: the next read ends the body without any I/O."""
        ...

    async def read(self) -> bytes: ...


class Upstream(Protocol):
    def stream(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[UpstreamResponse]: ...

    async def get(self, url: str) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


def error_message(body: bytes) -> str:
    """The message in a backend's error body, Ollama (`{"error": "..."}`) or OpenAI (`{"error": {"message"}}`)
    shaped, else the start of the body."""
    try:
        err = json.loads(body).get("error")
    except (ValueError, AttributeError):
        err = None
    if isinstance(err, dict):
        err = err.get("message")
    return str(err) if err else body[:200].decode("utf-8", "replace") or "no details"

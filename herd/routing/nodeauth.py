"""Signing the router's requests to nodes that ask for it: the one place between every caller of the upstream
client (the proxy's chats, native calls, pre-warm loads, auto-pull, the manage routes' pull/delete/copy) and
the HTTP client itself.

A node whose agent serves its backend through the LAN proxy (`herd.node.lanproxy`) reports `signed: true` in
its heartbeats; every request to that node's backend URL then carries the fleet-token signature headers
(`herd.fleet.signing`), computed over the body the router already holds whole. Requests to other nodes go out
as before. Which origins need signing is derived from the registry's snapshot, once per snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from urllib.parse import urlsplit

from herd.backends.upstream import Upstream, UpstreamResponse
from herd.fleet.signing import SIGNATURE, sign
from herd.fleet.state import FleetSnapshot


def origin(url: str) -> str:
    """`scheme://host:port` of a URL, lower-cased, with the default port filled in."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def signed_origins(snap: FleetSnapshot) -> frozenset[str]:
    """The backend origins of the nodes that take only signed requests."""
    return frozenset(origin(n.url) for n in snap.nodes.values() if n.heartbeat.signed)


def target(url: str) -> str:
    """The request target that gets signed: path and query."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class SigningUpstream:
    """`Upstream` that adds the fleet-token signature to requests for nodes flagged `signed`."""

    def __init__(self, inner: Upstream, token: str, snapshot: Callable[[], FleetSnapshot]) -> None:
        self.inner = inner
        self.token = token
        self.snapshot = snapshot
        self._seen: FleetSnapshot | None = None
        self._origins: frozenset[str] = frozenset()

    def needs_signature(self, url: str) -> bool:
        snap = self.snapshot()
        if snap is not self._seen:
            self._seen, self._origins = snap, signed_origins(snap)
        return bool(self._origins) and origin(url) in self._origins

    def stream(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[UpstreamResponse]:
        if self.needs_signature(url) and not (headers and SIGNATURE in headers):
            headers = {**(headers or {}), **sign(self.token, method, target(url), body or b"", time.time())}
        return self.inner.stream(method, url, body, content_type, headers)

    async def get(self, url: str) -> tuple[int, bytes]:
        async with self.stream("GET", url) as resp:
            return resp.status, await resp.read()

    async def aclose(self) -> None:
        await self.inner.aclose()

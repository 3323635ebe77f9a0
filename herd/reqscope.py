"""The per-request exit stack: created by the ASGI wrapper in `herd.web.server` (or the inference fast path,
`herd.web.fastpath`) for each HTTP request, used by the route handlers to hold a node slot and an upstream
response for exactly the life of the response. And `Departures`: how the connection layer
(`herd.web.connections`) tells the fast path that a client left, without a watcher task per request."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import trio

SCOPE_KEY = "herd.stack"


def request_stack(scope: Mapping[str, Any]) -> AsyncExitStack:
    stack = scope.get(SCOPE_KEY)
    if not isinstance(stack, AsyncExitStack):
        raise RuntimeError("herd request scope missing: serve the app through herd.web.server.RequestScoped")
    return stack


# The caller's app (its API key's name), put in the scope by the web edge's guard (`herd.web.guard`); the request
# record files the request under it in traces and analytics.
APP_KEY = "herd.app"


class Departures:
    """Cancel scopes of requests in progress, by client address (one HTTP/1.1 connection each): the connection
    layer calls `left` when that client closes or breaks its connection, which cancels them. Built once by the
    composition root and shared by the connection layer and the fast path."""

    def __init__(self) -> None:
        self._scopes: dict[Any, list[trio.CancelScope]] = {}

    def add(self, client: Any, scope: trio.CancelScope) -> None:
        self._scopes.setdefault(client, []).append(scope)

    def discard(self, client: Any, scope: trio.CancelScope) -> None:
        scopes = self._scopes.get(client)
        if scopes is not None and scope in scopes:
            scopes.remove(scope)
            if not scopes:
                del self._scopes[client]

    def left(self, client: Any) -> None:
        for scope in self._scopes.pop(client, ()):
            scope.cancel()

    def watched(self) -> int:
        """Requests being watched (tests and the dashboard)."""
        return sum(len(v) for v in self._scopes.values())

"""The per-request exit stack: created by the ASGI wrapper in `herd.web.server` (or the inference fast path,
`herd.web.fastpath`) for each HTTP request, used by the route handlers to hold a node slot and an upstream
response for exactly the life of the response. And `ClientLinks`: how the connection layer
(`herd.web.connections`) and the fast path tell each other that a client left, or that a head goes out with
its body."""

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


class ClientLinks:
    """What the inference fast path and the connection layer (`herd.web.connections`) tell each other about a
    client's HTTP/1.1 connection, by the client's address (the ASGI scope's `client`). Built once by the
    composition root and shared by both.

    - The fast path registers the cancel scope of each request it serves; when the client closes or breaks the
      connection, the connection layer calls `left`, which cancels them (no watcher task per request).
    - `hold_head`: the response head the fast path is about to send is followed at once by its whole body; the
      connection layer holds the head back and writes both with one send (`take_hold`).
    """

    def __init__(self) -> None:
        self._scopes: dict[Any, list[trio.CancelScope]] = {}
        self._hold: set[Any] = set()

    def add(self, client: Any, scope: trio.CancelScope) -> None:
        self._scopes.setdefault(client, []).append(scope)

    def discard(self, client: Any, scope: trio.CancelScope) -> None:
        self._hold.discard(client)
        scopes = self._scopes.get(client)
        if scopes is not None and scope in scopes:
            scopes.remove(scope)
            if not scopes:
                del self._scopes[client]

    def left(self, client: Any) -> None:
        self._hold.discard(client)
        for scope in self._scopes.pop(client, ()):
            scope.cancel()

    def hold_head(self, client: Any) -> None:
        self._hold.add(client)

    def take_hold(self, client: Any) -> bool:
        """Whether the data about to be written is a head to hold for its body (asked once per head)."""
        if client in self._hold:
            self._hold.remove(client)
            return True
        return False

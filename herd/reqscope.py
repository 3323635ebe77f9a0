"""The per-request exit stack: created by the ASGI wrapper in `herd.web.server` for each HTTP request, used by
the route handlers to hold a node slot and an upstream response for exactly the life of the response."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

SCOPE_KEY = "herd.stack"


def request_stack(scope: Mapping[str, Any]) -> AsyncExitStack:
    stack = scope.get(SCOPE_KEY)
    if not isinstance(stack, AsyncExitStack):
        raise RuntimeError("herd request scope missing: serve the app through herd.web.server.RequestScoped")
    return stack


# The caller's app (its API key's name), put in the scope by the web edge's guard (`herd.web.guard`); the request
# record files the request under it in traces and analytics.
APP_KEY = "herd.app"

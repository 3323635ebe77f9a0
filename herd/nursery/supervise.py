"""Supervision for background duties: a duty that crashes after it started is logged and restarted with
exponential backoff instead of taking the router down; one that fails before it started fails the start-up
(a broken configuration should be loud). Cancellation always propagates."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import trio

log = logging.getLogger("herd.supervise")


class Service(Protocol):
    async def run(self, *, task_status: Any = ...) -> None: ...


class _Started:
    def __init__(self, parent: Any) -> None:
        self.parent = parent
        self.done = False

    def started(self, value: Any = None) -> None:
        self.done = True
        self.parent.started(value)


class Supervised:
    def __init__(
        self, name: str, service: Service, *, backoff: float = 1.0, max_backoff: float = 30.0
    ) -> None:
        self.name = name
        self.service = service
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.restarts = 0

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        status = _Started(task_status)
        delay = self.backoff
        while True:
            try:
                await self.service.run(task_status=status if not status.done else trio.TASK_STATUS_IGNORED)
                return
            except Exception:
                if not status.done:
                    raise
                self.restarts += 1
                log.exception("%s crashed; restarting in %g s (restart %d)", self.name, delay, self.restarts)
            await trio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

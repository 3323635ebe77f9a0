"""The holding queue: when every candidate node is full, requests wait here per model, in fair-share order
across apps (`herd.routing.fairshare`: weighted round-robin between apps, priority then FIFO within one).

`HoldingQueue.admit` runs the caller's `try_claim` (which ranks the current snapshot and reserves a free slot,
synchronously) whenever it is this request's turn and something changed (a slot freed, a heartbeat arrived, the
rebalancer's tick). Waiting is bounded in depth and time: a full queue or a timeout is a 429 with `Retry-After`.
Cancellation (client gone) removes the waiter, so nothing is left behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import trio

from herd.errors import FleetBusy
from herd.routing.fairshare import FairOrder
from herd.routing.pulse import Pulse

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QueueStats:
    model: str
    depth: int
    oldest_wait: float


class _Waiter:
    __slots__ = ("since",)

    def __init__(self, since: float) -> None:
        self.since = since


class HoldingQueue:
    def __init__(
        self, pulse: Pulse, *, timeout: float, max_depth: int, weights: Mapping[str, float] | None = None
    ) -> None:
        self.pulse = pulse
        self.timeout = timeout
        self.max_depth = max_depth
        self.weights = dict(weights or {})
        self._queues: dict[str, FairOrder[_Waiter]] = {}

    def depth(self, model: str) -> int:
        q = self._queues.get(model)
        return len(q) if q else 0

    def depths(self) -> dict[str, int]:
        return {m: len(q) for m, q in self._queues.items()}

    def stats(self) -> list[QueueStats]:
        now = trio.current_time()
        return [
            QueueStats(m, len(q), now - min(w.since for w in q.waiters()))
            for m, q in sorted(self._queues.items())
            if len(q)
        ]

    async def admit(
        self,
        model: str,
        try_claim: Callable[[], T | None],
        *,
        until: float | None = None,
        app: str = "-",
        priority: int = 1,
    ) -> tuple[T, float]:
        """Return `try_claim()`'s first non-None result, taken in fair-share turn, and how long we waited.

        Waits until `until` (absolute trio time; default now + the queue timeout), then raises `FleetBusy`.

        `try_claim` raises for "can never be served" (no node has the model); None means "full right now".
        """
        queue = self._queues.get(model)
        if not queue:
            claimed = try_claim()
            if claimed is not None:
                return claimed, 0.0
        queue = self._queues.setdefault(model, FairOrder(self.weights))
        if len(queue) >= self.max_depth:
            raise FleetBusy(
                f"the queue for '{model}' is full ({self.max_depth} waiting)", retry_after=self.timeout / 2
            )
        me = _Waiter(trio.current_time())
        queue.add(me, app, priority)
        served = False
        try:
            with trio.move_on_at(until if until is not None else me.since + self.timeout):
                while True:
                    if queue.head() is me:
                        claimed = try_claim()
                        if claimed is not None:
                            served = True
                            return claimed, trio.current_time() - me.since
                    await self.pulse.wait()
            raise FleetBusy(
                f"every node that serves '{model}' stayed busy for {trio.current_time() - me.since:.0f} s",
                retry_after=self.timeout / 2,
            )
        finally:
            was_head = queue.head() is me
            queue.remove(me, served=served)
            if not len(queue):
                self._queues.pop(model, None)
            elif was_head:
                self.pulse.fire()  # the next request in line may be able to go now

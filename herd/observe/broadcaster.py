"""Fans live frames out to dashboard subscribers. Each subscriber has a small bounded channel; `publish` uses
`send_nowait` and drops (and counts) for a subscriber that is behind, so a slow browser never slows a request.

`Broadcaster.run` is a service: it publishes a fleet frame whenever the registry swaps in a new snapshot
(at most `max_rate` per second) and a request frame for every finished request (a recorder sink). The benchmark
runner publishes a `benchmark` frame (the run as `GET /fleet/benchmarks/<id>` shows it) on every step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio

from herd.fleet.registry import Registry
from herd.observe.fleet_view import request_kind
from herd.routing.record import RequestRecord


class Broadcaster:
    def __init__(
        self,
        registry: Registry,
        fleet_frame: Callable[[], dict[str, Any]],
        *,
        max_rate: float = 2.0,
        depth: int = 16,
    ) -> None:
        self.registry = registry
        self.fleet_frame = fleet_frame
        self.interval = 1.0 / max_rate
        self.depth = depth
        self._subscribers: set[trio.MemorySendChannel[str]] = set()
        self.dropped = 0

    def subscribe(self) -> tuple[trio.MemorySendChannel[str], trio.MemoryReceiveChannel[str]]:
        send, receive = trio.open_memory_channel[str](self.depth)
        self._subscribers.add(send)
        return send, receive

    def unsubscribe(self, send: trio.MemorySendChannel[str]) -> None:
        self._subscribers.discard(send)
        send.close()

    def publish(self, frame: dict[str, Any]) -> None:
        text = json.dumps(frame)
        for send in list(self._subscribers):
            try:
                send.send_nowait(text)
            except trio.WouldBlock:
                self.dropped += 1
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._subscribers.discard(send)

    def on_request(self, rec: RequestRecord) -> None:
        """Recorder sink."""
        if not self._subscribers:
            return
        self.publish(
            {
                "type": "request",
                "data": {
                    "time": rec.started_at,
                    "dialect": rec.dialect,
                    "model": rec.model,
                    "node": rec.node_id,
                    "status": rec.status,
                    "error": rec.error,
                    "duration": rec.duration,
                    "ttft": rec.ttft,
                    "completion_tokens": rec.completion_tokens,
                    "tokens_per_s": rec.tokens_per_s,
                    "tags": list(rec.tags),
                    "kind": request_kind(rec.path),
                },
            }
        )

    def on_benchmark(self, run: dict[str, Any]) -> None:
        """Benchmark runner hook: a run's progress."""
        if self._subscribers:
            self.publish({"type": "benchmark", "data": run})

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        sent = self.registry.snapshot.version
        while True:
            if self.registry.snapshot.version == sent:  # a swap during the throttle sleep is not missed
                await self.registry.wait_changed()
            sent = self.registry.snapshot.version
            if self._subscribers:
                self.publish({"type": "fleet", "data": self.fleet_frame()})
            await trio.sleep(self.interval)  # throttle: at most max_rate frames a second

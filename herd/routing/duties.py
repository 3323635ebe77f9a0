"""Supervised routing duties, each a service in the router's one nursery tree.

- `Rebalancer`: every few seconds, while requests wait, fires the pulse so each queue head is re-scored
  against the latest snapshot (moving it to a node where the model became hot, or whose slot freed).
- `PreWarmer`: when a model's queue is deep, loads it on the best node that has it on disk but not in memory
  (the runner-up), so the next requests find it hot. The decision is the pure `prewarm_targets`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import trio

from herd.backends import kinds
from herd.backends.upstream import Upstream, UpstreamError
from herd.fleet.registry import Registry
from herd.fleet.state import FleetSnapshot, NodeState
from herd.routing.guest import usable_memory
from herd.routing.pulse import Pulse
from herd.routing.queue import HoldingQueue

log = logging.getLogger("herd.duties")


class Rebalancer:
    def __init__(self, queue: HoldingQueue, pulse: Pulse, interval: float) -> None:
        self.queue = queue
        self.pulse = pulse
        self.interval = interval
        self.ticks = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.interval)
            if self.queue.depths():
                self.ticks += 1
                self.pulse.fire()


def prewarm_targets(
    snap: FleetSnapshot,
    depths: Mapping[str, int],
    warming: Mapping[tuple[str, str], float],
    now: float,
    *,
    threshold: int,
    cooldown: float,
) -> list[tuple[str, str]]:
    """(node_id, model) pairs to load now: for each model with at least `threshold` requests waiting, the
    routable node with the most free memory that has it on disk, not loaded, and not warmed recently."""
    targets = []
    for model, depth in sorted(depths.items()):
        if depth < threshold:
            continue
        cold = [
            n
            for n in snap.nodes.values()
            if n.routable
            and model in n.models
            and model not in n.loaded
            and now - warming.get((n.node_id, model), -cooldown - 1) > cooldown
        ]
        if cold:
            best = max(cold, key=lambda n: (usable_memory(n.heartbeat), n.node_id))
            targets.append((best.node_id, model))
    return targets


class PreWarmer:
    def __init__(
        self,
        registry: Registry,
        queue: HoldingQueue,
        upstream: Upstream,
        *,
        interval: float = 1.0,
        threshold: int = 2,
        cooldown: float = 120.0,
        load_timeout: float = 300.0,
    ) -> None:
        self.registry = registry
        self.queue = queue
        self.upstream = upstream
        self.interval = interval
        self.threshold = threshold
        self.cooldown = cooldown
        self.load_timeout = load_timeout
        self.warming: dict[tuple[str, str], float] = {}
        self.loaded: list[tuple[str, str]] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                await trio.sleep(self.interval)
                now = trio.current_time()
                snap = self.registry.snapshot
                for node_id, model in prewarm_targets(
                    snap,
                    self.queue.depths(),
                    self.warming,
                    now,
                    threshold=self.threshold,
                    cooldown=self.cooldown,
                ):
                    self.warming[(node_id, model)] = now
                    nursery.start_soon(self._load, snap.nodes[node_id], model)

    async def _load(self, node: NodeState, model: str) -> None:
        node_id = node.node_id
        body = json.dumps({"model": model, "prompt": "", "stream": False}).encode()
        req = kinds.request_for(node, "/api/generate", body)  # Ollama: a load; OpenAI servers: one token
        log.info("pre-warming %s on %s", model, node_id)
        with trio.move_on_after(self.load_timeout):
            try:
                async with self.upstream.stream(req.method, node.url + req.path, req.body) as resp:
                    await resp.read()
                    if resp.status == 200:
                        self.loaded.append((node_id, model))
            except UpstreamError as exc:
                log.warning("pre-warming %s on %s failed: %s", model, node_id, exc)

"""The router's live fleet: the one place that swaps in a new `FleetSnapshot`.

`ingest` is called by the `/heartbeat` handler (and the in-process local agent); `Expiry.run` is the supervised
task that moves silent nodes to degraded and offline. Readers take `registry.snapshot` and never lock: under
Trio, the sync swap is atomic. Waiters (the holding queue, the dashboard) watch `changed`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from herd.config import FleetConfig
from herd.fleet.heartbeat import Heartbeat
from herd.fleet.state import FleetSnapshot, apply_heartbeat, forgotten, sweep

log = logging.getLogger("herd.fleet")


class Registry:
    def __init__(self, cfg: FleetConfig, on_swap: Callable[[], None] = lambda: None) -> None:
        self.cfg = cfg
        self.snapshot = FleetSnapshot()
        self._changed = trio.Event()
        self._on_swap = on_swap
        self.paused: set[str] = set()  # nodes an operator took out of rotation (kept across heartbeats)
        self._served: tuple[FleetSnapshot, dict[str, bool]] = (self.snapshot, {})

    def _swap(self, snap: FleetSnapshot) -> None:
        if snap is self.snapshot:
            return
        self.snapshot = snap
        self._changed.set()
        self._changed = trio.Event()
        self._on_swap()

    def serves(self, model: str) -> bool:
        """`snapshot.serves(model)`, remembered until the next snapshot (asked once per finished request)."""
        snap, memo = self._served
        if snap is not self.snapshot:
            snap, memo = self._served = (self.snapshot, {})
        known = memo.get(model)
        if known is None:
            if len(memo) >= 1024:  # names come from callers: bounded
                memo.clear()
            known = memo[model] = snap.serves(model)
        return known

    async def wait_changed(self) -> None:
        """Return after the next snapshot swap."""
        await self._changed.wait()

    def ingest(self, hb: Heartbeat) -> None:
        before = self.snapshot.nodes.get(hb.node_id)
        self._swap(apply_heartbeat(self.snapshot, hb, trio.current_time()))
        if before is None:
            log.info("node %s joined (%s)", hb.node_id, hb.backend_url)
        elif hb.draining and not before.heartbeat.draining:
            log.info("node %s is draining", hb.node_id)

    def edit(self, change: Callable[[FleetSnapshot], FleetSnapshot]) -> None:
        """Apply a pure catalog edit (`herd.fleet.catalog_edit`) to the live snapshot at once."""
        self._swap(change(self.snapshot))

    def pause(self, node_id: str, paused: bool) -> bool:
        """Take a node out of rotation (or back in); False if the node is unknown."""
        if node_id not in self.snapshot.nodes:
            return False
        (self.paused.add if paused else self.paused.discard)(node_id)
        log.info("node %s %s", node_id, "paused" if paused else "resumed")
        self._on_swap()
        return True

    def tick(self) -> None:
        before = self.snapshot
        self._swap(sweep(before, trio.current_time(), self.cfg))
        if self.snapshot is not before:
            for node_id in forgotten(before, self.snapshot):
                self.paused.discard(node_id)
                log.info("node %s forgotten: silent for %.0f s", node_id, self.cfg.forget_after)
            for node_id, node in self.snapshot.nodes.items():
                if before.nodes[node_id].status is not node.status:
                    log.info("node %s is now %s", node_id, node.status)


class Expiry:
    """Supervised duty: re-evaluates heartbeat ages every `sweep_interval` seconds."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.registry.cfg.sweep_interval)
            self.registry.tick()

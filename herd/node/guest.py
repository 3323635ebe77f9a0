"""The agent's "good guest" report: one probe sample per heartbeat (`herd.node.probes.sample`), folded into
the capacity learner (`herd.node.capacity`) and saved to the data dir every few minutes. `herd.node.agent`
calls `report` while building each heartbeat; the composition root (`herd.nursery.node`) calls `save` once
more on the way out."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import trio

from herd.fleet.guest import GuestState
from herd.fleet.heartbeat import HostStats
from herd.node import capacity

log = logging.getLogger("herd.node")


def wall_clock() -> tuple[float, float]:
    """(epoch seconds, this machine's UTC offset in seconds): the learner's week is the owner's local week."""
    now = time.time()
    return now, float(time.localtime(now).tm_gmtoff)


class GuestReporter:
    def __init__(
        self,
        *,
        sample: Callable[[HostStats], Awaitable[GuestState]],
        data_dir: Path,
        learning: bool = True,
        clock: Callable[[], tuple[float, float]] = wall_clock,
        save_every: float = 300.0,
    ) -> None:
        self.sample = sample
        self.data_dir = data_dir
        self.learning = learning
        self.clock = clock
        self.save_every = save_every
        self.learner: capacity.CapacityLearner | None = None
        self._saved_at: float | None = None

    async def _learner(self) -> capacity.CapacityLearner:
        if self.learner is None:
            self.learner = await trio.to_thread.run_sync(capacity.load_file, self.data_dir)
        return self.learner

    async def report(self, host: HostStats) -> GuestState:
        state = await self.sample(host)
        if not self.learning:
            return state
        learner = await self._learner()
        epoch, offset = self.clock()
        load = capacity.load_of(state.owner)
        if load is not None:
            learner.observe(epoch, offset, load)
        now = trio.current_time()
        if self._saved_at is None:
            self._saved_at = now
        elif now - self._saved_at >= self.save_every:
            await self.save()
        return replace(
            state, capacity=learner.week(), capacity_now=round(capacity.week_position(epoch, offset), 3)
        )

    async def save(self) -> None:
        """Write the learned week to the data dir (atomic; a failure is logged, the agent goes on)."""
        if self.learner is None:
            return
        self._saved_at = trio.current_time()
        try:
            await trio.to_thread.run_sync(capacity.save_file, self.data_dir, self.learner.to_json())
        except OSError as exc:
            log.warning("cannot save the learned week in %s: %s", self.data_dir, exc)

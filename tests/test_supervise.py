"""Supervised duties restart after a crash, with backoff; start-up failures and cancellation propagate."""

from __future__ import annotations

import pytest
import trio

from herd.nursery.supervise import Supervised


class Flaky:
    def __init__(self, crashes: int) -> None:
        self.crashes = crashes
        self.runs = 0
        self.started_at: list[float] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.runs += 1
        task_status.started()
        self.started_at.append(trio.current_time())
        await trio.sleep(1)
        if self.runs <= self.crashes:
            raise RuntimeError("boom")
        await trio.sleep_forever()


async def test_crashes_are_restarted_with_backoff(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = Flaky(crashes=3)
    sup = Supervised("flaky", flaky, backoff=1, max_backoff=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(20)
        assert flaky.runs == 4 and sup.restarts == 3
        gaps = [round(b - a) for a, b in zip(flaky.started_at, flaky.started_at[1:], strict=False)]
        assert gaps == [2, 3, 3]  # 1 s of work, then backoff 1, 2, 2 (capped)
        nursery.cancel_scope.cancel()
    assert "flaky crashed" in caplog.text


async def test_failure_before_start_propagates() -> None:
    class Broken:
        async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            raise ValueError("bad config")

    with pytest.raises(ValueError, match="bad config"):
        await Supervised("broken", Broken()).run()

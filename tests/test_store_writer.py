"""The batching writer every SQLite table uses (`herd.store.writer`): it wakes once per batch, not once per row;
a full batch is written before the flush interval; drops are counted; what is buffered is flushed on cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlite_utils
import trio
import trio.lowlevel
import trio.testing

from herd.store.writer import BatchWriter


class Writer(BatchWriter):
    table = "rows"

    def open_db(self, path: Path) -> sqlite_utils.Database:
        return sqlite_utils.Database(str(path))


class Steps(trio.abc.Instrument):
    """Counts the steps of the tasks running `BatchWriter.run`."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name == "herd.store.writer.BatchWriter.run":
            self.steps += 1


def rows(path: Path) -> list[dict[str, Any]]:
    db = sqlite_utils.Database(str(path))
    try:
        return list(db["rows"].rows) if "rows" in db.table_names() else []
    finally:
        db.close()


async def written(writer: BatchWriter, n: int) -> None:
    with trio.fail_after(1e6):  # hang guard only (virtual time runs on while the worker thread inserts)
        while writer.written < n:  # noqa: ASYNC110 (the writer is another task)
            await trio.sleep(0.01)


async def test_one_wake_up_per_batch_not_per_row(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    writer = Writer(tmp_path / "w.db", batch=1000, flush_interval=1.0)
    steps = Steps()
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        trio.lowlevel.add_instrument(steps)
        try:
            for i in range(200):  # requests finishing one after another, each a few checkpoints apart
                writer.offer_row({"i": i})
                await trio.sleep(0.001)
            await written(writer, 200)
        finally:
            trio.lowlevel.remove_instrument(steps)
        nursery.cancel_scope.cancel()
    assert [r["i"] for r in rows(tmp_path / "w.db")] == list(range(200))
    assert steps.steps < 20  # woken by the first row and the flush interval, plus the worker thread: not 200


async def test_a_full_batch_is_written_before_the_flush_interval(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    writer = Writer(tmp_path / "w.db", batch=10, flush_interval=1000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        start = trio.current_time()
        for i in range(25):
            writer.offer_row({"i": i})
            await trio.sleep(0.001)
        await written(writer, 20)
        assert trio.current_time() - start < 1000.0  # two full batches did not wait for the interval
        assert writer.written == 20  # the last 5 wait for the interval (or the next rows)
        await written(writer, 25)
        assert trio.current_time() - start >= 1000.0
        nursery.cancel_scope.cancel()
    assert [r["i"] for r in rows(tmp_path / "w.db")] == list(range(25))


async def test_drops_when_full_and_flushes_on_cancel(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    writer = Writer(tmp_path / "w.db", capacity=5, batch=100, flush_interval=1000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for i in range(8):  # no checkpoint: the writer takes the first, the channel holds 5, 2 are dropped
            writer.offer_row({"i": i})
        assert writer.dropped == 2
        await trio.sleep(1.0)
        assert writer.written == 0  # waiting for the interval or a full batch
        nursery.cancel_scope.cancel()
    assert writer.written == 6
    assert [r["i"] for r in rows(tmp_path / "w.db")] == list(range(6))

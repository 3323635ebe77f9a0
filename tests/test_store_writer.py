"""The batching writer every SQLite table uses (`herd.store.writer`): it wakes once per batch, not once per row;
a full batch is written before the flush interval; drops are counted; what is buffered is flushed on cancel; rows
inserted with the prepared `executemany` are stored exactly as sqlite-utils' `insert_all` stores them."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlite_utils
import trio
import trio.lowlevel
import trio.testing

from herd.routing.record import RequestRecord
from herd.store.traces import TraceStore, open_db, row_of
from herd.store.writer import BatchWriter, plain_insert


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


def trace_records() -> list[RequestRecord]:
    base = RequestRecord(1.7e9 + 0.0005, 0.0, "ollama", "/api/chat", "m", "m:latest", False)
    return [
        base,
        replace(
            base,
            started_at=1.7e9 + 12.3456789,
            model="bad\ud800name",  # row_of makes it storable
            client="10.0.0.1\udfff",
            node_id="n1",
            score=0.1 + 0.2,
            breakdown={"thermal": 1.0, "queue": -0.25},
            tags=("nightly", "é\u2028"),
            ttft=float("inf"),
            duration=float("nan"),  # SQLite stores NULL either way
            prompt_tokens=2**62,
            completion_tokens=0,
            tokens_per_s=12.5,
            stream=True,
            context_protected=True,
            num_ctx=8192,
            affinity="hit",
            est_finish=3.0,
            app="team-a",
        ),
        replace(base, status=502, error="node n2 failed: 'quoted' \"text\"", fallback="a -> b", retries=2),
    ]


def table(path: Path, name: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return [tuple(map(repr, r)) for r in conn.execute(f"SELECT * FROM {name} ORDER BY rowid")]
    finally:
        conn.close()


async def test_trace_rows_are_stored_as_sqlite_utils_stores_them(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    recs = trace_records() * 3
    assert plain_insert("traces", [row_of(r) for r in recs]) is not None  # these take the executemany path
    store = TraceStore(tmp_path / "traces.db", flush_interval=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for rec in recs:
            store.offer(rec)
        await written(store, len(recs))
        nursery.cancel_scope.cancel()
    reference = open_db(tmp_path / "reference.db")
    with reference.conn:
        reference["traces"].insert_all([row_of(r) for r in recs])  # type: ignore[union-attr]
    reference.close()
    stored = table(tmp_path / "traces.db", "traces")
    assert stored == table(tmp_path / "reference.db", "traces")
    assert "'bad\ufffdname'" in stored[1] and "None" in stored[0]


async def test_values_sqlite_utils_converts_still_go_through_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    rows: list[dict[str, Any]] = [
        {"n": 1, "at": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC), "j": {"a": [1, "é"]}},
        {"n": 2, "at": date(2024, 5, 6), "j": ["x"]},
        {"j": None, "n": 3, "at": None},  # same keys in another order
    ]
    assert plain_insert("rows", rows) is None
    assert plain_insert("rows", [{"a": 1}, {"b": 2}]) is None  # keys differ
    assert plain_insert("rows", [{"a": 1}, {"a": 2, "b": 3}]) is None
    assert plain_insert("rows", [{"a[0]": 1}]) is None  # sqlite-utils renames bracketed keys
    assert plain_insert('we"ird', [{"x y": 1}, {"x y": None}]) == (
        'INSERT INTO "we""ird" ("x y") VALUES (?)',
        [(1,), (None,)],
    )
    writer = Writer(tmp_path / "w.db", flush_interval=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for row in rows:
            writer.offer_row(row)
        await written(writer, len(rows))
        writer.offer_row({"n": 4, "at": "later", "j": "text"})  # the table exists now: executemany
        await written(writer, len(rows) + 1)
        nursery.cancel_scope.cancel()
    reference = sqlite_utils.Database(str(tmp_path / "reference.db"))
    reference["rows"].insert_all(rows)  # type: ignore[union-attr]
    reference["rows"].insert({"n": 4, "at": "later", "j": "text"})  # type: ignore[union-attr]
    reference.close()
    stored = table(tmp_path / "w.db", "rows")
    assert stored == table(tmp_path / "reference.db", "rows")
    assert stored[0][1] == "'2024-05-06T07:08:09+00:00'"  # isoformat, not sqlite3's default adapter


async def test_rows_built_in_the_worker_thread_and_a_broken_one_costs_only_itself(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A callable row is built in the writer's thread; one that raises is logged, counted and skipped."""
    rejected: list[int] = []
    writer = Writer(tmp_path / "w.db", batch=10, flush_interval=1.0, on_reject=lambda: rejected.append(1))
    threads: list[str] = []

    def build(i: int) -> dict[str, Any]:
        import threading

        threads.append(threading.current_thread().name)
        if i == 2:
            raise ValueError("broken record")
        return {"i": i}

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for i in range(5):
            writer.offer_row(lambda i=i: build(i))
        await written(writer, 4)
        nursery.cancel_scope.cancel()
    assert sorted(r["i"] for r in rows(tmp_path / "w.db")) == [0, 1, 3, 4]
    assert writer.rejected == 1 and rejected == [1]
    assert threads and all(name != "MainThread" for name in threads)

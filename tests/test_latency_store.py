"""The latency store: observations reach SQLite through the one writer, and a new router starts with them."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import trio
from harness import start_fleet

from herd.routing.latency import LatencyBook
from herd.routing.record import RequestRecord
from herd.store.latency import LatencyStore

MODEL = "llama3.2:3b"


def record(i: int) -> RequestRecord:
    rec = RequestRecord(1000.0 + i, 0.0, "ollama", "/api/chat", "m", "m:latest", False, node_id="n1")
    rec.ttft, rec.duration, rec.tokens_per_s, rec.done = 0.1 * i, 1.0 + i, 40.0, True
    return rec


async def test_writer_batches_and_history_is_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "latency.db"
    book = LatencyBook()
    store = LatencyStore(path, book, flush_interval=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for i in range(60):
            store.offer(record(i))
        failed = record(99)
        failed.status = 502
        store.offer(failed)  # failures are not latency observations
        while store.written < 60:  # noqa: ASYNC110 (the writer is another task)
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    rows = sqlite3.connect(path).execute("SELECT COUNT(*), MAX(duration_s) FROM latency").fetchone()
    assert rows == (60, 60.0)
    fresh = LatencyBook()
    async with trio.open_nursery() as nursery:
        await nursery.start(LatencyStore(path, fresh).run)
        nursery.cancel_scope.cancel()
    stats = fresh.stats("n1", "m:latest")
    assert stats is not None and stats.n == 50 and stats.duration_s > 40  # the newest 50, p75


async def test_router_persists_observations_across_restarts(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        fleet = await start_fleet(nursery, tmp_path)
        for _ in range(3):
            resp = await fleet.http.post(
                fleet.url + "/api/chat", content=json.dumps({"model": MODEL, "messages": []})
            )
            assert resp.status_code == 200
        while fleet.router.latency_store.written < 3:  # noqa: ASYNC110 (the writer is another task)
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        fleet = await start_fleet(nursery, tmp_path)
        stats = fleet.router.latency.stats("n1", MODEL)
        assert stats is not None and stats.n == 3
        nursery.cancel_scope.cancel()


async def test_performance_model_survives_a_restart_and_old_files_gain_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "latency.db"
    old = sqlite3.connect(path)  # a file from before the performance model
    old.execute(
        "CREATE TABLE latency (ts FLOAT, node TEXT, model TEXT, ttft_s FLOAT, tokens_per_s FLOAT, "
        "duration_s FLOAT, concurrency INTEGER)"
    )
    old.execute("INSERT INTO latency VALUES (?, 'n1', 'm:latest', 0.5, 20.0, 3.0, 1)", [time.time() - 60])
    old.commit()
    old.close()
    store = LatencyStore(path, LatencyBook(), flush_interval=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for i in range(5):
            rec = record(i)
            rec.final = {
                "prompt_eval_count": 400,
                "prompt_eval_duration": 500_000_000,  # 800 tokens/s
                "eval_count": 100,
                "eval_duration": 2_000_000_000,  # 50 tokens/s
                "load_duration": 3_000_000_000 if i == 0 else 1_000_000,
            }
            store.offer(rec)
        while store.written < 5:  # noqa: ASYNC110 (the writer is another task)
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    fresh = LatencyBook()
    async with trio.open_nursery() as nursery:
        await nursery.start(LatencyStore(path, fresh).run)
        nursery.cancel_scope.cancel()
    stats = fresh.stats("n1", "m:latest")
    assert stats is not None and stats.n == 6 and stats.perf is not None
    assert stats.perf.prompt_rate == 800.0 and stats.perf.gen_rate == 50.0 and stats.perf.load_s == 3.0
    assert fresh.model_output("m:latest") == 100

"""Benchmark history from the trace database (sync SQL on a read-only connection, run in a worker thread):
finished runs with their results, and every stored result for the routing priors (`herd.insight.bench.priors`).
The runner writes both tables (`bench_runs`, `bench_results`) through the trace store's single writer."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from herd.insight.bench import BenchResult, priors
from herd.store.traces import BENCH_RESULTS, BENCH_RUNS

RESULT_FIELDS = tuple(BenchResult.__dataclass_fields__)


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def result_of(row: sqlite3.Row) -> BenchResult:
    data = dict(row)
    return BenchResult(**{k: data[k] for k in RESULT_FIELDS if k in data})


def results(conn: sqlite3.Connection, run_ids: list[str] | None = None) -> list[BenchResult]:
    """Stored results, oldest first (all of them, or those of `run_ids`)."""
    if BENCH_RESULTS not in _tables(conn):
        return []
    if run_ids is None:
        rows = conn.execute(f"SELECT * FROM {BENCH_RESULTS} ORDER BY ts").fetchall()
    else:
        marks = ",".join("?" * len(run_ids))
        rows = conn.execute(
            f"SELECT * FROM {BENCH_RESULTS} WHERE run_id IN ({marks}) ORDER BY ts", run_ids
        ).fetchall()
    return [result_of(r) for r in rows]


def runs(conn: sqlite3.Connection, limit: int = 20, run_id: str | None = None) -> list[dict[str, Any]]:
    """Finished runs, newest first, each with its results, shaped like `BenchRun.as_json`."""
    if BENCH_RUNS not in _tables(conn):
        return []
    if run_id is None:
        rows = conn.execute(f"SELECT * FROM {BENCH_RUNS} ORDER BY created DESC LIMIT ?", [limit]).fetchall()
    else:
        rows = conn.execute(f"SELECT * FROM {BENCH_RUNS} WHERE id = ?", [run_id]).fetchall()
    by_run: dict[str, list[dict[str, Any]]] = {}
    for r in results(conn, [row["id"] for row in rows]):
        by_run.setdefault(r.run_id, []).append(r.as_json())
    out = []
    for row in rows:
        out.append(
            {
                "id": row["id"],
                "status": row["status"],
                "prompt_set": row["prompt_set"],
                "parallel": row["parallel"],
                "targets": [{"node": n, "model": m} for n, m in json.loads(row["targets"] or "[]")],
                "created": row["created"],
                "finished": row["finished"],
                "progress": 1.0 if row["status"] == "done" else None,
                "error": row["error"],
                "results": by_run.get(row["id"], []),
            }
        )
    return out


def load_priors(path: Path) -> dict[tuple[str, str], BenchResult]:
    """Blocking (run it in a worker thread at start): the stored benchmark priors per (node, model), for the
    routing performance model; empty when there is no trace DB yet."""
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        return priors(results(conn))
    finally:
        conn.close()

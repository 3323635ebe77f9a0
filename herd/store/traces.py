"""The trace store: one row per proxied request in `<data_dir>/traces.db` (table `traces`, opens as is in
datasette). The recorder hands finished `RequestRecord`s to `TraceStore.offer` (non-blocking; a full channel
drops and counts), and one writer task inserts them in batches in a worker thread, WAL mode, so a killed router
loses at most the batch in flight and never corrupts the file. Schema changes are numbered migrations; rows
older than the retention are deleted hourly. Columns are documented in docs/traces.md.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import sqlite_utils

from herd.routing.record import RequestRecord
from herd.store.writer import BatchWriter
from herd.validate import storable

log = logging.getLogger("herd.store")

TABLE = "traces"


def _v1(db: sqlite_utils.Database) -> None:
    db[TABLE].create(  # type: ignore[union-attr]
        {
            "id": int,
            "ts": float,
            "time": str,
            "dialect": str,
            "path": str,
            "requested_model": str,
            "model": str,
            "node": str,
            "status": int,
            "error": str,
            "retries": int,
            "fallback": str,
            "score": float,
            "breakdown": str,
            "queue_wait": float,
            "ttft": float,
            "duration": float,
            "prompt_tokens": int,
            "completion_tokens": int,
            "tokens_per_s": float,
            "tags": str,
            "client": str,
            "stream": int,
            "concurrency": int,
            "context_protected": int,
        },
        pk="id",
    )
    for cols in (["ts"], ["model", "ts"], ["node", "ts"], ["status", "ts"]):
        db[TABLE].create_index(cols)  # type: ignore[union-attr]


def _v2(db: sqlite_utils.Database) -> None:
    """Usage per UTC day x node x model, for datasette and `GET /fleet/analytics/usage`."""
    db.execute("CREATE VIEW IF NOT EXISTS usage_daily AS " + usage_select(""))


def usage_select(where: str) -> str:
    """Requests, tokens in/out, busy seconds, errors and queue wait per UTC day x node x model."""
    return f"""
SELECT date(ts, 'unixepoch') AS day,
       COALESCE(node, '') AS node,
       model,
       COUNT(*) AS requests,
       COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(SUM(completion_tokens), 0) AS completion_tokens,
       ROUND(COALESCE(SUM(CASE WHEN node IS NOT NULL THEN duration END), 0), 3) AS busy_s,
       SUM(CASE WHEN status >= 400 OR error IS NOT NULL THEN 1 ELSE 0 END) AS errors,
       ROUND(COALESCE(SUM(queue_wait), 0), 3) AS queue_wait_s,
       ROUND(COALESCE(MAX(queue_wait), 0), 3) AS max_queue_wait_s
FROM {TABLE} {where}
GROUP BY day, node, model
"""


BENCH_RUNS = "bench_runs"
BENCH_RESULTS = "bench_results"


def _v3(db: sqlite_utils.Database) -> None:
    """Benchmark runs and their results per (node, model, parallel), with the node's hardware and versions."""
    db[BENCH_RUNS].create(  # type: ignore[union-attr]
        {
            "id": str,
            "created": float,
            "finished": float,
            "status": str,
            "prompt_set": str,
            "parallel": int,
            "request": str,
            "targets": str,
            "error": str,
        },
        pk="id",
    )
    db[BENCH_RESULTS].create(  # type: ignore[union-attr]
        {
            "run_id": str,
            "ts": float,
            "node_id": str,
            "model": str,
            "parallel": int,
            "ttft_s": float,
            "prompt_tps": float,
            "gen_tps": float,
            "load_s": float,
            "aggregate_tps": float,
            "requests": int,
            "errors": int,
            "prompt_set": str,
            "backend": str,
            "backend_version": str,
            "cpu_count": int,
            "mem_total": int,
            "error": str,
        }
    )
    db[BENCH_RESULTS].create_index(["node_id", "model", "ts"])  # type: ignore[union-attr]
    db[BENCH_RESULTS].create_index(["run_id"])  # type: ignore[union-attr]


def _v4(db: sqlite_utils.Database) -> None:
    db[TABLE].add_column("num_ctx", int)  # type: ignore[union-attr]


def _v5(db: sqlite_utils.Database) -> None:
    """Routing judgement: conversation affinity (hit/miss), the predicted time to finish, the fair-share app."""
    db[TABLE].add_column("affinity", str)  # type: ignore[union-attr]
    db[TABLE].add_column("est_finish", float)  # type: ignore[union-attr]
    db[TABLE].add_column("app", str)  # type: ignore[union-attr]


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3, _v4, _v5]


def open_db(path: Path) -> sqlite_utils.Database:
    """Open (creating and migrating as needed) with WAL and synchronous=NORMAL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    db = sqlite_utils.Database(conn)
    if "_migrations" not in db.table_names():
        db["_migrations"].create({"version": int, "applied": str}, pk="version")  # type: ignore[union-attr]
    done = {row["version"] for row in db["_migrations"].rows}
    for version, migrate in enumerate(MIGRATIONS, start=1):
        if version not in done:
            with conn:
                migrate(db)
                db["_migrations"].insert({"version": version, "applied": datetime.now(UTC).isoformat()})  # type: ignore[union-attr]
    return db


@lru_cache(maxsize=8)
def _second(sec: int) -> str:
    return datetime.fromtimestamp(sec, UTC).isoformat()[:19]  # YYYY-MM-DDTHH:MM:SS


def iso_ms(ts: float) -> str:
    """`datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")`, the date and time of day formatted
    once per second: the microseconds are rounded half-even as datetime rounds them, then truncated to ms."""
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)
    sec = int(whole)
    if us >= 1_000_000:
        sec, us = sec + 1, us - 1_000_000
    elif us < 0:
        sec, us = sec - 1, us + 1_000_000
    return f"{_second(sec)}.{us // 1000:03d}+00:00"


def _plain_text(rec: RequestRecord) -> bool:
    """Whether no text field of the record can hold a lone surrogate (the JSON columns are ASCII)."""
    try:
        text = "".join(
            (
                rec.dialect,
                rec.path,
                rec.requested_model,
                rec.model,
                rec.node_id or "",
                rec.error or "",
                rec.fallback or "",
                rec.client or "",
                rec.affinity or "",
                rec.app,
            )
        )
    except TypeError:  # not text after all: let `row_of` look at every value
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def row_of(rec: RequestRecord) -> dict[str, Any]:
    """The trace row of a finished request; text is made storable (lone surrogates become U+FFFD)."""
    row = {
        "ts": rec.started_at,
        "time": iso_ms(rec.started_at),
        "dialect": rec.dialect,
        "path": rec.path,
        "requested_model": rec.requested_model,
        "model": rec.model,
        "node": rec.node_id,
        "status": rec.status,
        "error": rec.error,
        "retries": rec.retries,
        "fallback": rec.fallback,
        "score": rec.score,
        "breakdown": json.dumps(rec.breakdown) if rec.breakdown else None,
        "queue_wait": rec.queue_wait,
        "ttft": rec.ttft,
        "duration": rec.duration,
        "prompt_tokens": rec.prompt_tokens,
        "completion_tokens": rec.completion_tokens,
        "tokens_per_s": rec.tokens_per_s,
        "tags": json.dumps(list(rec.tags)) if rec.tags else None,
        "client": rec.client,
        "stream": int(rec.stream),
        "concurrency": rec.concurrency,
        "context_protected": int(rec.context_protected),
        "num_ctx": rec.num_ctx,
        "affinity": rec.affinity,
        "est_finish": rec.est_finish,
        "app": rec.app,
    }
    if _plain_text(rec):
        return row
    return {k: storable(v) if isinstance(v, str) else v for k, v in row.items()}


class TraceStore(BatchWriter):
    table = TABLE

    def __init__(self, path: Path, *, retention_days: float = 30.0, **kw: Any) -> None:
        super().__init__(path, **kw)
        self.retention_days = retention_days

    def open_db(self, path: Path) -> sqlite_utils.Database:
        return open_db(path)

    def prepare(self, db: sqlite_utils.Database) -> None:
        self.prune(db)

    def prune(self, db: sqlite_utils.Database) -> None:
        with db.conn:
            db.execute(f"DELETE FROM {TABLE} WHERE ts < ?", [time.time() - self.retention_days * 86400])

    def offer(self, rec: RequestRecord) -> None:
        """Recorder sink: never blocks a request; the row is built in the writer's thread (a finished record no
        longer changes)."""
        self.offer_row(partial(row_of, rec))

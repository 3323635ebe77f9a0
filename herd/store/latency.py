"""The latency store: every finished request's (node, model, TTFT, tokens/s, duration, concurrency) is kept in
SQLite (`<data_dir>/latency.db`, table `latency`, readable with datasette) so p75 estimates survive a restart,
with the performance model's inputs (prompt/generation token counts and times, load time).

One writer task (`LatencyStore.run`) owns the connection: the recorder hands observations over with a
non-blocking `offer` into a bounded channel (dropped and counted if the writer falls behind — a request never
waits on SQLite), and the writer inserts them in batches in a worker thread. At start it loads the most recent
observations per (node, model) into the latency book before it reports ready.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from functools import partial
from pathlib import Path
from typing import Any

import sqlite_utils
import trio

from herd.routing.latency import WINDOW, LatencyBook
from herd.routing.record import RequestRecord, timings
from herd.store.writer import BatchWriter

log = logging.getLogger("herd.store")

TABLE = "latency"
COLUMNS = {
    "ts": float,
    "node": str,
    "model": str,
    "ttft_s": float,
    "tokens_per_s": float,
    "duration_s": float,
    "concurrency": int,
}
# The performance model's inputs (`herd.routing.perf`), added later: a database made before gets them added.
PERF_COLUMNS = {
    "prompt_tokens": int,
    "prompt_s": float,
    "completion_tokens": int,
    "gen_s": float,
    "load_s": float,
}


def open_db(path: Path) -> sqlite_utils.Database:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    db = sqlite_utils.Database(conn)
    if TABLE not in db.table_names():
        db[TABLE].create(COLUMNS)  # type: ignore[union-attr]
        db[TABLE].create_index(["node", "model", "ts"])  # type: ignore[union-attr]
    have = set(db[TABLE].columns_dict)
    for name, kind in PERF_COLUMNS.items():
        if name not in have:
            db[TABLE].add_column(name, kind)  # type: ignore[union-attr]
    return db


def load_recent(db: sqlite_utils.Database, per_key: int = WINDOW) -> list[dict[str, Any]]:
    """The newest `per_key` observations of every (node, model), oldest first."""
    sql = f"""
        SELECT ts, node, model, ttft_s, tokens_per_s, duration_s, concurrency,
               prompt_tokens, prompt_s, completion_tokens, gen_s, load_s FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY node, model ORDER BY ts DESC) AS rn FROM {TABLE}
        ) WHERE rn <= ? ORDER BY ts
    """
    return [dict(row) for row in db.query(sql, [per_key])]


def prune(db: sqlite_utils.Database, keep_days: float) -> None:
    db.execute(f"DELETE FROM {TABLE} WHERE ts < ?", [time.time() - keep_days * 86400])
    db.conn.commit()


class LatencyStore(BatchWriter):
    table = TABLE

    def __init__(self, path: Path, book: LatencyBook, *, keep_days: float = 30.0, **kw: Any) -> None:
        super().__init__(path, **kw)
        self.book = book
        self.keep_days = keep_days
        self._loaded = False

    def open_db(self, path: Path) -> sqlite_utils.Database:
        return open_db(path)

    def prepare(self, db: sqlite_utils.Database) -> None:
        rows = [] if self._loaded else load_recent(db)
        self._loaded = True  # a restarted writer must not feed the same history twice
        self._history = rows
        self.prune(db)

    def prune(self, db: sqlite_utils.Database) -> None:
        prune(db, self.keep_days)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async def load(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            await super(LatencyStore, self).run(task_status=task_status)

        async with trio.open_nursery() as nursery:
            await nursery.start(load)
            for r in getattr(self, "_history", []):  # feed the book in the event loop, where it lives
                tps = r["tokens_per_s"] if r["tokens_per_s"] and not math.isnan(r["tokens_per_s"]) else 0.0
                perf = {k: r.get(k) or kind(0) for k, kind in PERF_COLUMNS.items()}
                self.book.observe(
                    r["node"],
                    r["model"],
                    r["ttft_s"],
                    tps,
                    r["duration_s"],
                    r["concurrency"] or 1,
                    at=trio.current_time() - max(0.0, time.time() - r["ts"]),
                    **perf,
                )
            log.info(
                "latency store %s: loaded %d observations", self.path, len(getattr(self, "_history", []))
            )
            self._history = []
            task_status.started()

    def offer(self, rec: RequestRecord) -> None:
        """Recorder sink: never blocks; a full channel drops the observation."""
        if rec.status != 200 or rec.error or not rec.node_id or rec.ttft is None or rec.duration is None:
            return
        self.offer_row(partial(row_of, rec))  # built in the writer's thread


def row_of(rec: RequestRecord) -> dict[str, Any]:
    """The latency row of a finished, successful request."""
    return {
        "ts": rec.started_at,
        "node": rec.node_id,
        "model": rec.model,
        "ttft_s": rec.ttft,
        "tokens_per_s": rec.tokens_per_s or 0.0,
        "duration_s": rec.duration,
        "concurrency": rec.concurrency,
        **(rec.perf_inputs if rec.perf_inputs is not None else timings(rec.final)),
    }

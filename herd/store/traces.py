"""The trace store: one row per proxied request in `<data_dir>/traces.db` (table `traces`, opens as is in
datasette). The recorder hands finished `RequestRecord`s to `TraceStore.offer` (non-blocking; a full channel
drops and counts), and one writer task inserts them in batches in a worker thread, WAL mode, so a killed router
loses at most the batch in flight and never corrupts the file. Schema changes are numbered migrations; rows
older than the retention are deleted hourly. Columns are documented in docs/traces.md.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils
import trio

from herd.routing.record import RequestRecord

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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1]


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


def row_of(rec: RequestRecord) -> dict[str, Any]:
    return {
        "ts": rec.started_at,
        "time": datetime.fromtimestamp(rec.started_at, UTC).isoformat(timespec="milliseconds"),
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
    }


class TraceStore:
    def __init__(
        self,
        path: Path,
        *,
        retention_days: float = 30.0,
        capacity: int = 10_000,
        batch: int = 500,
        flush_interval: float = 0.5,
        prune_interval: float = 3600.0,
    ) -> None:
        self.path = path
        self.retention_days = retention_days
        self.batch = batch
        self.flush_interval = flush_interval
        self.prune_interval = prune_interval
        self._send, self._receive = trio.open_memory_channel[dict[str, Any]](capacity)
        self.dropped = 0
        self.written = 0

    def offer(self, rec: RequestRecord) -> None:
        """Recorder sink: never blocks a request."""
        try:
            self._send.send_nowait(row_of(rec))
        except trio.WouldBlock:
            self.dropped += 1

    def _prune(self, db: sqlite_utils.Database) -> None:
        with db.conn:
            db.execute(f"DELETE FROM {TABLE} WHERE ts < ?", [time.time() - self.retention_days * 86400])

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        db = await trio.to_thread.run_sync(open_db, self.path)
        try:
            await trio.to_thread.run_sync(self._prune, db)
            task_status.started()
            pending: list[dict[str, Any]] = []
            next_prune = trio.current_time() + self.prune_interval
            try:
                while True:
                    with trio.move_on_at(next_prune):
                        pending.append(await self._receive.receive())
                        with trio.move_on_after(self.flush_interval):
                            while len(pending) < self.batch:
                                pending.append(await self._receive.receive())
                    if pending:
                        await self._write(db, pending)
                        pending = []
                    if trio.current_time() >= next_prune:
                        await trio.to_thread.run_sync(self._prune, db)
                        next_prune = trio.current_time() + self.prune_interval
            finally:
                with trio.CancelScope(shield=True) as scope:  # flush what is buffered, within a deadline
                    scope.deadline = trio.current_time() + 2.0
                    while True:
                        try:
                            pending.append(self._receive.receive_nowait())
                        except trio.WouldBlock:
                            break
                    if pending:
                        await self._write(db, pending)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(db.conn.close)

    async def _write(self, db: sqlite_utils.Database, rows: list[dict[str, Any]]) -> None:
        def insert() -> None:
            with db.conn:
                db[TABLE].insert_all(rows)  # type: ignore[union-attr]

        await trio.to_thread.run_sync(insert)
        self.written += len(rows)

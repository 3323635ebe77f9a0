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
    """The trace row of a finished request; text is made storable (lone surrogates become U+FFFD)."""
    row = {
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
        """Recorder sink: never blocks a request."""
        self.offer_row(row_of(rec))

"""The one pattern every SQLite table here uses: a single writer task owns the connection; producers hand rows
over with a non-blocking `offer_row` into a bounded channel (dropped and counted when the writer falls behind,
so a request never waits on SQLite); the writer inserts them in batches in a worker thread, prunes old rows
periodically, and flushes what is buffered (within a deadline) when it is cancelled. The writer wakes once per
batch, not once per row: after a batch's first row it sleeps until `flush_interval` has passed or `offer_row`
has counted a full batch, then drains the channel without waiting. A row the database refuses
costs only itself: the batch is retried row by row, the bad row logged and counted (`on_reject`).

sqlite-utils owns every schema (tables, indexes, migrations) and is the fallback insert; a batch whose rows of a
table share their keys and hold only values SQLite binds as they are (None, int, float, str, bytes) is inserted
with one prepared `executemany`, which stores exactly what `insert_all` would, at a third of its cost."""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import sqlite_utils
import trio

log = logging.getLogger("herd.store")

# Values sqlite3 binds unchanged and sqlite-utils' `jsonify_if_needed` leaves alone (a date, say, would differ).
PLAIN = frozenset({type(None), int, float, str, bytes, bool})
Row = dict[str, Any] | Callable[[], dict[str, Any]]  # a row, or what builds it (called in the worker thread)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def plain_insert(name: str, batch: list[dict[str, Any]]) -> tuple[str, list[tuple[Any, ...]]] | None:
    """`INSERT` and its parameters for rows of one table that share their keys and hold only plain values, else
    None (sqlite-utils inserts those: it serialises other values and renames bracketed keys)."""
    cols = tuple(batch[0])
    if not cols or any("[" in c or "]" in c for c in cols):
        return None
    get = itemgetter(*cols)
    try:
        if len(cols) == 1:
            params = [(get(row),) for row in batch if len(row) == 1]
        else:
            params = [get(row) for row in batch if len(row) == len(cols)]
    except KeyError:
        return None
    if len(params) != len(batch) or not PLAIN.issuperset(map(type, chain.from_iterable(params))):
        return None
    sql = f"INSERT INTO {_quote(name)} ({', '.join(map(_quote, cols))}) VALUES ({', '.join('?' * len(cols))})"
    return sql, params


class BatchWriter:
    """Subclasses set `table` and implement `open_db`, and may override `prepare` (runs once the DB is open,
    before the service reports ready) and `prune`."""

    table = ""

    def __init__(
        self,
        path: Path,
        *,
        capacity: int = 10_000,
        batch: int = 500,
        flush_interval: float = 0.5,
        prune_interval: float = 3600.0,
        on_reject: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self.batch = batch
        self.flush_interval = flush_interval
        self.prune_interval = prune_interval
        self._send, self._receive = trio.open_memory_channel[tuple[str, Row]](capacity)
        self.dropped = 0
        self.written = 0
        self.rejected = 0  # rows the database refused (the rest of their batch is kept)
        self.on_reject = on_reject
        self._unbatched = 0  # rows offered and not yet taken into a batch (in the channel or `pending`)
        self._full = trio.Event()  # set by `offer_row` once `_unbatched` reaches `batch`

    def open_db(self, path: Path) -> sqlite_utils.Database:
        raise NotImplementedError

    def prepare(self, db: sqlite_utils.Database) -> None:
        """Blocking start-up work in the worker thread (load history, prune)."""

    def prune(self, db: sqlite_utils.Database) -> None:
        """Blocking periodic clean-up in the worker thread."""

    def offer_row(self, row: Row, table: str | None = None) -> None:
        """Hand a row to the writer (`table`: another table of the same database; default `self.table`). A
        callable is called in the worker thread to build the row: the request path only queues it, and rows
        built in a batch cost less than one at a time between requests."""
        try:
            self._send.send_nowait((table or self.table, row))
        except trio.WouldBlock:
            self.dropped += 1
            return
        self._unbatched += 1
        if self._unbatched >= self.batch:
            self._full.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        db = await trio.to_thread.run_sync(self.open_db, self.path)
        try:
            await trio.to_thread.run_sync(self.prepare, db)
            task_status.started()
            pending: list[tuple[str, Row]] = []
            next_prune = trio.current_time() + self.prune_interval
            try:
                while True:
                    with trio.move_on_at(next_prune):
                        pending.append(await self._receive.receive())
                        if self._unbatched < self.batch:
                            with trio.move_on_after(self.flush_interval):
                                await self._full.wait()  # one wake-up per batch, not per row
                    self._take(pending, self.batch)
                    if pending:
                        await self._write(db, pending)
                        pending = []
                    if trio.current_time() >= next_prune:
                        await trio.to_thread.run_sync(self.prune, db)
                        next_prune = trio.current_time() + self.prune_interval
            finally:
                with trio.CancelScope(shield=True) as scope:  # flush what is buffered, within a deadline
                    scope.deadline = trio.current_time() + 2.0
                    self._take(pending, None)
                    if pending:
                        await self._write(db, pending)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(db.conn.close)

    def _take(self, pending: list[tuple[str, Row]], limit: int | None) -> None:
        """Move what the channel holds into `pending` without waiting (up to `limit` rows in all)."""
        while limit is None or len(pending) < limit:
            try:
                pending.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                break
        self._unbatched = self._receive.statistics().current_buffer_used  # what is left is the next batch's
        if self._unbatched < self.batch:
            self._full = trio.Event()

    async def _write(self, db: sqlite_utils.Database, rows: list[tuple[str, Row]]) -> None:
        rejected = await trio.to_thread.run_sync(self._insert, db, rows)
        self.written += len(rows) - rejected
        self.rejected += rejected
        for _ in range(rejected):
            self.on_reject()

    def _insert(self, db: sqlite_utils.Database, rows: list[tuple[str, Row]]) -> int:
        """Insert a batch (rows of one or more tables) in one transaction; if that fails, row by row, so one bad
        row costs only itself. Returns how many rows were rejected (each is logged)."""
        built, rejected = _built(rows)
        tables: dict[str, list[dict[str, Any]]] = {}
        for name, row in built:
            tables.setdefault(name, []).append(row)
        try:
            with db.conn:
                for name, batch in tables.items():
                    plain = plain_insert(name, batch)
                    if plain is None:
                        db[name].insert_all(batch)  # type: ignore[union-attr]
                    else:
                        db.conn.executemany(*plain)
            return rejected
        # a missing table, a column or a value the fast path cannot take: sqlite-utils's turn
        except Exception:
            pass
        try:
            with db.conn:
                for name, batch in tables.items():
                    db[name].insert_all(batch)  # type: ignore[union-attr]
            return rejected
        except Exception:  # any row can fail the batch: find it below
            pass
        for name, row in built:
            try:
                with db.conn:
                    db[name].insert(row)  # type: ignore[union-attr]
            except Exception as exc:
                rejected += 1
                log.warning(
                    "%s: row rejected (%s: %s), the rest of its batch kept",
                    name,
                    type(exc).__name__,
                    exc,
                )
        return rejected


def _built(rows: list[tuple[str, Row]]) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """The batch with every deferred row built; a row that cannot be built is logged and counted as rejected."""
    out: list[tuple[str, dict[str, Any]]] = []
    rejected = 0
    for name, row in rows:
        if callable(row):
            try:
                row = row()
            except Exception as exc:
                rejected += 1
                log.warning(
                    "%s: row not built (%s: %s), the rest of its batch kept", name, type(exc).__name__, exc
                )
                continue
        out.append((name, row))
    return out, rejected

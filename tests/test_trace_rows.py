"""A trace row (`herd.store.traces.row_of`) is built without re-checking every value: it must be exactly the row
the plain formula gives (the datetime ISO time, every text made storable)."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from test_store_writer import trace_records

from herd.routing.record import RequestRecord
from herd.store.traces import iso_ms, row_of
from herd.validate import storable


def plain_row(rec: RequestRecord) -> dict[str, Any]:
    """The row as it was built before: datetime for the time, `storable` applied to every string."""
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
        "num_ctx": rec.num_ctx,
        "affinity": rec.affinity,
        "est_finish": rec.est_finish,
        "app": rec.app,
    }
    return {k: storable(v) if isinstance(v, str) else v for k, v in row.items()}


def test_iso_time_is_datetimes_to_the_byte() -> None:
    rnd = random.Random(11)
    stamps = [
        0.0,
        1.0,
        -1.5,
        -0.0005,
        1.7e9 + 0.9995,
        1.7e9 + 0.9999995,
        1.7e9 + 0.0005,
        1.7e9 - 5e-7,
        1700000000,
    ]
    for _ in range(20_000):
        base = rnd.choice([rnd.uniform(-2e9, 4e9), float(rnd.randrange(0, 4_000_000_000))])
        # around every rounding edge: half a microsecond either side, the float just below
        stamps += [
            base,
            math.nextafter(base, 0),
            math.floor(base) + rnd.randrange(10**6) / 1e6 + rnd.choice([5e-7, -5e-7]),
        ]
    for ts in stamps:
        assert iso_ms(ts) == datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds"), ts


def test_rows_are_the_plain_formulas() -> None:
    recs = trace_records()
    recs += [
        replace(recs[0], requested_model="é", model="模型", app="ü-app"),  # not ASCII, nothing to replace
        replace(recs[0], error="caller said \udc80", fallback="a\ud83d -> b"),  # lone surrogates
        replace(recs[0], node_id="n\ud800", client=None, affinity="miss", tags=("\udfff",)),
        replace(recs[0], path="/api/\ud800", tags=("x",), breakdown={"\ud800": 1.0}),
    ]
    for field in ("dialect", "path", "requested_model", "model", "node_id", "error", "fallback", "client"):
        changed: Any = {field: f"{field}\udc80"}  # one field at a time holds a lone surrogate
        recs.append(replace(recs[0], **changed))
    recs += [replace(recs[0], affinity="\ud800"), replace(recs[0], app="\udbff")]
    for rec in recs:
        got, want = row_of(rec), plain_row(rec)
        assert list(got) == list(want)
        assert [repr(v) for v in got.values()] == [repr(v) for v in want.values()]
    assert row_of(replace(recs[0], node_id="n\ud800"))["node"] == "n\ufffd"

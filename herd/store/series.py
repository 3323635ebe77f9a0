"""Time series over the trace database for the dashboard's Trends charts (sync, run in a worker thread on the
read-only connection of `herd.store.queries`): for a range of 1 to 720 hours, buckets whose size follows the
range (`bucket_seconds`), each with requests, errors, tokens in/out, throughput, mean generation speed and the
p50/p95/p99 of latency and time to first token, optionally for one model or one node. Counts and sums are
aggregated in SQL; percentiles are computed in Python per bucket (SQLite has none).
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from typing import Any

MAX_HOURS = 720  # 30 days
MAX_BUCKETS = 180  # enough points for a phone-wide chart, few enough for a 30-day range
STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)


def bucket_seconds(hours: int) -> int:
    """The smallest step (1 min .. 1 day) that keeps a range of `hours` within MAX_BUCKETS points."""
    for step in STEPS:
        if hours * 3600 / step <= MAX_BUCKETS:
            return step
    return STEPS[-1]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of `values`, None when there are none."""
    if not values:
        return None
    data = sorted(values)
    rank = max(1, -(-len(data) * q // 1))  # ceil(n * q), at least the first
    return data[min(len(data), int(rank)) - 1]


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


OK = "status < 400 AND (error IS NULL OR error = '')"  # latency and speed come from successful requests only


def _totals(conn: sqlite3.Connection, where: str, args: list[Any], step: int) -> dict[int, dict[str, Any]]:
    """Counts, tokens and mean generation speed per bucket, aggregated in SQL."""
    sql = f"""SELECT CAST(ts / {step} AS INTEGER) * {step} AS b, COUNT(*),
        SUM(CASE WHEN {OK} THEN 0 ELSE 1 END), COALESCE(SUM(prompt_tokens), 0),
        COALESCE(SUM(completion_tokens), 0), AVG(CASE WHEN {OK} AND tokens_per_s > 0 THEN tokens_per_s END)
        FROM traces WHERE {where} GROUP BY b"""
    out = {}
    for t, n, errors, tokens_in, tokens_out, speed in conn.execute(sql, args).fetchall():
        out[int(t)] = {
            "requests": n,
            "errors": errors,
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "throughput_tps": round(tokens_out / step, 3),
            "gen_tps": None if speed is None else round(speed, 2),
        }
    return out


def _percentiles(
    conn: sqlite3.Connection, where: str, args: list[Any], step: int
) -> dict[int, dict[str, Any]]:
    """Latency and TTFT p50/p95/p99 per bucket (SQLite has no percentile: the values come to Python)."""
    durations: dict[int, list[float]] = defaultdict(list)
    ttfts: dict[int, list[float]] = defaultdict(list)
    cur = conn.cursor()
    cur.row_factory = None  # plain tuples: several times faster than sqlite3.Row here
    sql = f"SELECT CAST(ts / {step} AS INTEGER) * {step}, duration, ttft FROM traces WHERE {where} AND {OK}"
    for t, duration, ttft in cur.execute(sql, args):
        if duration is not None:
            durations[t].append(duration)
        if ttft is not None:
            ttfts[t].append(ttft)
    out: dict[int, dict[str, Any]] = {}
    for t in durations.keys() | ttfts.keys():
        d, f = sorted(durations.get(t, [])), sorted(ttfts.get(t, []))
        out[t] = {
            **{f"p{q}_ms": _ms(percentile(d, q / 100)) for q in (50, 95, 99)},
            **{f"ttft_p{q}_ms": _ms(percentile(f, q / 100)) for q in (50, 95, 99)},
        }
    return out


EMPTY = {
    "requests": 0,
    "errors": 0,
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "throughput_tps": 0.0,
    "gen_tps": None,
    **{f"{k}p{q}_ms": None for k in ("", "ttft_") for q in (50, 95, 99)},
}


def series(
    conn: sqlite3.Connection,
    hours: int,
    *,
    model: str | None = None,
    node: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Every bucket of the last `hours` (oldest first, empty ones included), plus the models and nodes seen
    in the window (for the page's filters)."""
    step = bucket_seconds(hours)
    end = int((time.time() if now is None else now) // step) * step  # start of the current bucket
    start = end - (hours * 3600 // step - 1) * step if hours * 3600 >= step else end
    where: list[str] = ["ts >= ?", "ts < ?"]
    args: list[float | str] = [float(start), float(end + step)]
    for column, value in (("model", model), ("node", node)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    totals = _totals(conn, " AND ".join(where), args, step)
    pcts = _percentiles(conn, " AND ".join(where), args, step)
    seen = conn.execute(
        "SELECT DISTINCT model, node FROM traces WHERE ts >= ? AND ts < ?", [float(start), float(end + step)]
    ).fetchall()
    return {
        "hours": hours,
        "step": step,
        "model": model,
        "node": node,
        "models": sorted({r["model"] for r in seen if r["model"]}),
        "nodes": sorted({r["node"] for r in seen if r["node"]}),
        "buckets": [
            {"t": t, **EMPTY, **totals.get(t, {}), **pcts.get(t, {})} for t in range(start, end + 1, step)
        ],
    }

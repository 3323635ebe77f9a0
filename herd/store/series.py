"""Time series over the trace database for the dashboard's Trends charts (sync, run in a worker thread on the
read-only connection of `herd.store.queries`): for a range of 1 to 720 hours, buckets whose size follows the
range (`bucket_seconds`), each with requests, errors, tokens in/out, throughput, mean generation speed and the
p50/p95/p99 of latency and time to first token, optionally for one model or one node. Percentiles are computed
in Python per bucket (SQLite has none); the SQL only filters the window.
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


def summarize(rows: list[sqlite3.Row], step: int) -> dict[str, Any]:
    """One bucket's figures from its trace rows (latency from successful requests only)."""
    ok = [r for r in rows if r["status"] < 400 and not r["error"]]
    durations = [r["duration"] for r in ok if r["duration"] is not None]
    ttfts = [r["ttft"] for r in ok if r["ttft"] is not None]
    speeds = [r["tokens_per_s"] for r in ok if r["tokens_per_s"]]
    out_tokens = sum(r["completion_tokens"] or 0 for r in rows)
    return {
        "requests": len(rows),
        "errors": len(rows) - len(ok),
        "prompt_tokens": sum(r["prompt_tokens"] or 0 for r in rows),
        "completion_tokens": out_tokens,
        "throughput_tps": round(out_tokens / step, 3),
        "gen_tps": round(sum(speeds) / len(speeds), 2) if speeds else None,
        **{f"p{q}_ms": _ms(percentile(durations, q / 100)) for q in (50, 95, 99)},
        **{f"ttft_p{q}_ms": _ms(percentile(ttfts, q / 100)) for q in (50, 95, 99)},
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
    cols = "ts, status, error, duration, ttft, prompt_tokens, completion_tokens, tokens_per_s"
    sql = f"SELECT {cols} FROM traces WHERE {' AND '.join(where)}"
    buckets: dict[int, list[sqlite3.Row]] = defaultdict(list)
    for r in conn.execute(sql, args):
        buckets[int(r["ts"] // step) * step].append(r)
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
        "buckets": [{"t": t, **summarize(buckets.get(t, []), step)} for t in range(start, end + 1, step)],
    }

"""Analytics over the trace database (sync SQL, run in a worker thread on a read-only connection): overview
totals, hourly trends, per-model / per-node / per-app (tag) usage and recent traces with filters. Percentiles
are computed in Python from the window's durations (SQLite has none)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from herd.store.traces import usage_select


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    data = sorted(values)
    return round(data[min(len(data) - 1, int(q * len(data)))] * 1000, 1)


def _summary(rows: list[sqlite3.Row]) -> dict[str, Any]:
    durations = [r["duration"] for r in rows if r["status"] == 200 and r["duration"] is not None]
    ttfts = [r["ttft"] for r in rows if r["ttft"] is not None]
    errors = sum(1 for r in rows if r["status"] >= 400 or r["error"])
    speeds = [r["tokens_per_s"] for r in rows if r["tokens_per_s"]]
    return {
        "requests": len(rows),
        "errors": errors,
        "error_rate": round(errors / len(rows), 4) if rows else 0.0,
        "prompt_tokens": sum(r["prompt_tokens"] or 0 for r in rows),
        "completion_tokens": sum(r["completion_tokens"] or 0 for r in rows),
        "p50_ms": _pct(durations, 0.5),
        "p95_ms": _pct(durations, 0.95),
        "p99_ms": _pct(durations, 0.99),
        "ttft_p50_ms": _pct(ttfts, 0.5),
        "tokens_per_s": round(sum(speeds) / len(speeds), 2) if speeds else None,
    }


def _window(conn: sqlite3.Connection, hours: int) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM traces WHERE ts >= ? ORDER BY ts", [time.time() - hours * 3600]
    ).fetchall()


def overview(conn: sqlite3.Connection, hours: int) -> dict[str, Any]:
    rows = _window(conn, hours)
    return {
        "hours": hours,
        **_summary(rows),
        "models": len({r["model"] for r in rows}),
        "nodes": len({r["node"] for r in rows if r["node"]}),
    }


def trends(conn: sqlite3.Connection, hours: int) -> dict[str, Any]:
    now = int(time.time() // 3600) * 3600
    start = now - (hours - 1) * 3600
    buckets: dict[int, list[sqlite3.Row]] = defaultdict(list)
    for r in conn.execute("SELECT * FROM traces WHERE ts >= ?", [start]):
        buckets[int(r["ts"] // 3600) * 3600].append(r)
    out = []
    for hour in range(start, now + 1, 3600):
        s = _summary(buckets.get(hour, []))
        out.append(
            {
                "hour": datetime.fromtimestamp(hour, UTC).isoformat(),
                **{
                    k: s[k]
                    for k in ("requests", "errors", "p50_ms", "p95_ms", "prompt_tokens", "completion_tokens")
                },
            }
        )
    return {"hours": hours, "buckets": out}


def by(conn: sqlite3.Connection, hours: int, column: str) -> list[dict[str, Any]]:
    groups: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for r in _window(conn, hours):
        if r[column]:
            groups[r[column]].append(r)
    keep = (
        "requests",
        "errors",
        "error_rate",
        "p50_ms",
        "p95_ms",
        "ttft_p50_ms",
        "completion_tokens",
        "tokens_per_s",
        "prompt_tokens",
    )
    rows = [{column: key, **{k: v for k, v in _summary(g).items() if k in keep}} for key, g in groups.items()]
    return sorted(rows, key=lambda r: -r["requests"])


def apps(conn: sqlite3.Connection, hours: int) -> list[dict[str, Any]]:
    groups: dict[str, list[sqlite3.Row]] = defaultdict(list)
    for r in _window(conn, hours):
        for tag in json.loads(r["tags"] or "[]"):
            groups[tag].append(r)
    out = []
    for tag, g in groups.items():
        daily: dict[str, int] = defaultdict(int)
        for r in g:
            daily[datetime.fromtimestamp(r["ts"], UTC).date().isoformat()] += 1
        s = _summary(g)
        out.append(
            {
                "tag": tag,
                **{
                    k: s[k]
                    for k in (
                        "requests",
                        "errors",
                        "error_rate",
                        "p50_ms",
                        "p95_ms",
                        "p99_ms",
                        "prompt_tokens",
                        "completion_tokens",
                    )
                },
                "daily": [{"day": d, "requests": n} for d, n in sorted(daily.items())],
            }
        )
    return sorted(out, key=lambda r: -r["requests"])


def traces(conn: sqlite3.Connection, *, limit: int, filters: dict[str, str]) -> list[dict[str, Any]]:
    where: list[str] = []
    args: list[Any] = []
    for column in ("model", "node", "dialect"):
        if filters.get(column):
            where.append(f"{column} = ?")
            args.append(filters[column])
    if filters.get("status"):
        where.append("status = ?")
        args.append(int(filters["status"]))
    if filters.get("tag"):
        where.append("tags LIKE ?")
        args.append(f'%"{filters["tag"]}"%')
    if filters.get("since"):
        where.append("ts >= ?")
        args.append(float(filters["since"]))
    sql = (
        "SELECT * FROM traces"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY ts DESC LIMIT ?"
    )
    rows = conn.execute(sql, [*args, limit]).fetchall()
    out = []
    for r in rows:
        row = dict(r)
        row["tags"] = json.loads(row["tags"] or "[]")
        row["breakdown"] = json.loads(row["breakdown"]) if row["breakdown"] else None
        out.append(row)
    return out


def usage(conn: sqlite3.Connection, days: int) -> dict[str, Any]:
    """Per UTC day x node x model over the last `days` days (today included), the `usage_daily` view's rows,
    plus totals per model."""
    start = datetime.fromtimestamp(time.time(), UTC).date().toordinal() - (days - 1)
    since = datetime.fromordinal(start).replace(tzinfo=UTC).timestamp()
    rows = [
        dict(r) for r in conn.execute(usage_select("WHERE ts >= ?") + " ORDER BY day, node, model", [since])
    ]
    totals: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = totals.setdefault(r["model"], {"model": r["model"], "nodes": set()})
        t["nodes"].add(r["node"])
        for key in ("requests", "prompt_tokens", "completion_tokens", "busy_s", "errors", "queue_wait_s"):
            t[key] = round(t.get(key, 0) + r[key], 3)
        t["max_queue_wait_s"] = max(t.get("max_queue_wait_s", 0.0), r["max_queue_wait_s"])
    models = [{**t, "nodes": sorted(n for n in t["nodes"] if n)} for t in totals.values()]
    return {"days": days, "rows": rows, "models": sorted(models, key=lambda t: -t["requests"])}

"""Trends time series on fixed trace rows: bucket size by range, percentiles per bucket, model/node filters,
empty buckets kept, the 30-day range and bad parameters over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from harness import start_fleet

from herd.routing.record import RequestRecord
from herd.store import queries
from herd.store.series import bucket_seconds, percentile, series
from herd.store.traces import open_db, row_of

MODEL, OTHER = "llama3.2:3b", "qwen3:8b"
NOW = 1_800_000_000.0  # a fixed "now", on a whole day boundary
HOUR = 3600.0


def rec(ts: float, node: str | None, model: str, **kw: object) -> RequestRecord:
    r = RequestRecord(ts, 0.0, "ollama", "/api/chat", model, model, False, node_id=node)
    fields = {
        "duration": 1.0,
        "ttft": 0.1,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "tokens_per_s": 20.0,
    }
    for key, value in {**fields, **kw}.items():
        setattr(r, key, value)
    return r


@pytest.fixture
def conn(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "traces.db"
    db = open_db(path)
    rows = [  # the last minute: ten requests on "a", durations 0.1 .. 1.0 s; one error on "b"
        *(rec(NOW - 30 + i, "a", MODEL, duration=(i + 1) / 10, ttft=(i + 1) / 100) for i in range(10)),
        rec(NOW - 5, "b", OTHER, status=500, error="boom", duration=9.0, completion_tokens=None),
        rec(NOW - 2 * HOUR, "b", OTHER, duration=3.0),  # two hours ago
        rec(NOW - 10 * 86400, "a", MODEL),  # ten days ago: only the 30-day range sees it
    ]
    db["traces"].insert_all([row_of(r) for r in rows])  # type: ignore[union-attr]
    db.conn.commit()
    db.conn.close()
    c = queries.connect(path)
    yield c
    c.close()


def test_bucket_size_follows_the_range() -> None:
    assert [bucket_seconds(h) for h in (1, 24, 168, 720)] == [60, 900, 3600, 6 * 3600]
    assert all(h * 3600 / bucket_seconds(h) <= 180 for h in range(1, 721))


def test_percentile_is_nearest_rank() -> None:
    data = [float(x) for x in range(1, 101)]
    assert (percentile(data, 0.5), percentile(data, 0.95), percentile(data, 0.99)) == (50.0, 95.0, 99.0)
    assert percentile([7.0], 0.99) == 7.0 and percentile([], 0.5) is None


def test_one_hour_in_minutes_with_percentiles(conn) -> None:  # type: ignore[no-untyped-def]
    got = series(conn, 1, now=NOW)  # NOW starts the current (empty) minute; the rows sit in the one before
    assert got["step"] == 60 and len(got["buckets"]) == 60
    assert got["buckets"][-1]["t"] == NOW and got["buckets"][0]["t"] == NOW - 59 * 60
    current, last, empty = got["buckets"][-1], got["buckets"][-2], got["buckets"][-3]
    assert (current["requests"], empty["requests"], empty["p50_ms"]) == (0, 0, None)  # empty buckets kept
    assert (last["t"], last["requests"], last["errors"]) == (NOW - 60, 11, 1)
    assert (last["p50_ms"], last["p95_ms"], last["p99_ms"]) == (
        500.0,
        1000.0,
        1000.0,
    )  # the error is left out
    assert (last["ttft_p50_ms"], last["ttft_p95_ms"]) == (50.0, 100.0)
    assert last["completion_tokens"] == 200 and last["throughput_tps"] == round(200 / 60, 3)
    assert last["gen_tps"] == 20.0 and last["prompt_tokens"] == 110
    quarter = series(conn, 24, model=MODEL, now=NOW)["buckets"][-2]  # 15-minute buckets, one model
    assert (quarter["t"], quarter["requests"], quarter["errors"]) == (NOW - 900, 10, 0)


def test_filters_errors_and_ranges(conn) -> None:  # type: ignore[no-untyped-def]
    day = series(conn, 24, now=NOW)
    assert day["models"] == [MODEL, OTHER] and day["nodes"] == ["a", "b"]
    assert sum(b["requests"] for b in day["buckets"]) == 12
    on_b = series(conn, 24, node="b", now=NOW)
    last = on_b["buckets"][-2]
    assert (last["requests"], last["errors"], last["p50_ms"]) == (1, 1, None)  # errors carry no latency
    two_ago = next(b for b in on_b["buckets"] if b["t"] == NOW - 2 * HOUR)
    assert two_ago["requests"] == 1 and two_ago["p99_ms"] == 3000.0
    month = series(conn, 720, now=NOW)
    assert month["step"] == 6 * 3600 and len(month["buckets"]) == 120
    assert sum(b["requests"] for b in month["buckets"]) == 13
    assert sum(b["requests"] for b in series(conn, 168, now=NOW)["buckets"]) == 12
    assert sum(b["requests"] for b in series(conn, 24, model="nope", now=NOW)["buckets"]) == 0


async def test_series_route(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    await fleet.http.post(fleet.url + "/api/chat", json={"model": MODEL, "messages": [], "stream": False})
    with trio.fail_after(10):  # hang guard
        while fleet.router.traces.written < 1:  # noqa: ASYNC110 (the writer is another task)
            await trio.sleep(0.01)
    for hours, step in (("1", 60), ("720", 21600)):
        got = (await fleet.http.get(f"{fleet.url}/fleet/analytics/series?hours={hours}&model={MODEL}")).json()
        assert got["step"] == step and got["buckets"][-1]["requests"] == 1 and got["models"] == [MODEL]
        assert got["buckets"][-1]["p50_ms"] > 0
    none = (await fleet.http.get(fleet.url + "/fleet/analytics/series?hours=24&node=elsewhere")).json()
    assert sum(b["requests"] for b in none["buckets"]) == 0 and none["node"] == "elsewhere"
    assert (await fleet.http.get(fleet.url + "/fleet/analytics/models?hours=720")).status_code == 200
    for bad in ("hours=721", "hours=0", "hours=1h", "node=" + "x" * 257, "model=a%00b"):
        resp = await fleet.http.get(fleet.url + "/fleet/analytics/series?" + bad)
        assert resp.status_code == 400 and "error" in resp.json()

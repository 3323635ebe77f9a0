"""Usage history per UTC day x node x model: the `usage_daily` view, the query and `/fleet/analytics/usage`."""

from __future__ import annotations

import time
from pathlib import Path

import trio
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

from herd.routing.record import RequestRecord
from herd.store import queries
from herd.store.traces import open_db, row_of

MODEL = "llama3.2:3b"
DAY = 86400.0


def rec(ts: float, node: str | None, model: str, **kw: object) -> RequestRecord:
    r = RequestRecord(ts, 0.0, "ollama", "/api/chat", model, model, False, node_id=node)
    for key, value in {"duration": 2.0, "prompt_tokens": 10, "completion_tokens": 20, **kw}.items():
        setattr(r, key, value)
    return r


def test_usage_groups_by_day_node_and_model(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    db = open_db(path)
    today = (time.time() // DAY) * DAY + 60  # just after midnight UTC: yesterday is another day
    rows = [
        rec(today, "a", MODEL, queue_wait=1.5),
        rec(today + 1, "a", MODEL, queue_wait=0.5),
        rec(today + 2, "b", MODEL, status=500, error="boom", completion_tokens=None, duration=1.0),
        rec(today - DAY, "a", MODEL),
        rec(today - 10 * DAY, "a", MODEL),  # outside a 7-day window
        rec(today, None, "ghost:latest", status=404, error="not found", duration=0.0, prompt_tokens=None),
    ]
    db["traces"].insert_all([row_of(r) for r in rows])  # type: ignore[union-attr]
    db.conn.commit()
    day = time.strftime("%Y-%m-%d", time.gmtime(today))
    view = [dict(r) for r in db.query("SELECT * FROM usage_daily WHERE day = ? ORDER BY node, model", [day])]
    assert [(r["node"], r["model"], r["requests"]) for r in view] == [
        ("", "ghost:latest", 1),
        ("a", MODEL, 2),
        ("b", MODEL, 1),
    ]
    a = view[1]
    assert (a["prompt_tokens"], a["completion_tokens"], a["busy_s"], a["errors"]) == (20, 40, 4.0, 0)
    assert (a["queue_wait_s"], a["max_queue_wait_s"]) == (2.0, 1.5)
    assert view[0]["busy_s"] == 0 and view[0]["errors"] == 1 and view[2]["errors"] == 1

    conn = queries.connect(path)
    try:
        week = queries.usage(conn, 7)
        one = queries.usage(conn, 1)
    finally:
        conn.close()
    assert len(week["rows"]) == 4 and len(one["rows"]) == 3
    total = next(m for m in week["models"] if m["model"] == MODEL)
    assert total["requests"] == 4 and total["nodes"] == ["a", "b"] and total["errors"] == 1
    assert total["busy_s"] == 7.0 and total["max_queue_wait_s"] == 1.5


async def test_usage_route(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, {"n1": FakeOllama([FakeModel(MODEL)], loaded=[MODEL])})
    for _ in range(3):
        resp = await fleet.http.post(
            fleet.url + "/api/chat", json={"model": MODEL, "messages": [], "stream": False}
        )
        assert resp.status_code == 200
    with trio.fail_after(10):
        while fleet.router.traces.written < 3:  # noqa: ASYNC110 (the writer is another task)
            await trio.sleep(0.01)
    got = (await fleet.http.get(fleet.url + "/fleet/analytics/usage?days=2")).json()
    assert got["days"] == 2 and [(r["node"], r["model"], r["requests"]) for r in got["rows"]] == [
        ("n1", MODEL, 3)
    ]
    assert got["rows"][0]["completion_tokens"] > 0 and got["rows"][0]["busy_s"] > 0
    for bad in ("0", "x", "400"):
        resp = await fleet.http.get(fleet.url + "/fleet/analytics/usage?days=" + bad)
        assert resp.status_code == 400 and "days" in resp.text

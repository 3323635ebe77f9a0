"""Routing judgement through a real router: the affinity verdict in X-Herd-Affinity and the trace database,
the predicted time to finish and the fair-share app recorded, X-Herd-Priority checked."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import trio
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet
from test_traces import wait_written

MODEL = "llama3.2:3b"
SYSTEM = {"role": "system", "content": "You answer questions about this document. " * 60}


async def test_next_turn_goes_back_to_the_node_holding_the_prompt(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    nodes = {n: FakeOllama([FakeModel(MODEL)], loaded=[MODEL]) for n in ("a", "b")}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    finished = fleet.router.services.recorder.sinks
    send, done = trio.open_memory_channel[Any](10)
    finished.append(send.send_nowait)

    async def chat(messages: list[dict[str, str]], **headers: str) -> Any:
        body = {"model": MODEL, "messages": messages, "stream": False}
        resp = await fleet.http.post(fleet.url + "/api/chat", json=body, headers=headers)
        assert resp.status_code == 200, resp.text
        await done.receive()  # the recorder (and so the affinity book) has seen the end
        return resp

    await fleet.http.post(fleet.url + "/fleet/nodes/a/pause")
    turn1 = [SYSTEM, {"role": "user", "content": "What is it about?"}]
    first = await chat(turn1, **{"X-Herd-Tags": "reader"})
    assert first.headers["x-herd-node"] == "b" and first.headers["x-herd-affinity"] == "miss"
    await fleet.http.post(fleet.url + "/fleet/nodes/a/resume")
    turn2 = [*turn1, {"role": "assistant", "content": "Documents."}, {"role": "user", "content": "More?"}]
    second = await chat(turn2, **{"X-Herd-Priority": "high"})
    assert second.headers["x-herd-node"] == "b" and second.headers["x-herd-affinity"] == "hit"
    other = await chat([{"role": "user", "content": "unrelated"}])
    assert other.headers["x-herd-affinity"] == "miss"
    await wait_written(fleet.router.traces, 3)
    rows = (
        sqlite3.connect(tmp_path / "traces.db")
        .execute("SELECT node, affinity, est_finish > 0, app FROM traces ORDER BY id")
        .fetchall()
    )
    assert rows[0] == ("b", "miss", 1, "reader") and rows[1][:3] == ("b", "hit", 1)
    assert rows[1][3] == "127.0.0.1"  # no tag, no API key: the client address


async def test_bad_priority_is_a_400(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    body = {"model": MODEL, "messages": [], "stream": False}
    resp = await fleet.http.post(fleet.url + "/api/chat", json=body, headers={"X-Herd-Priority": "now!"})
    assert resp.status_code == 400 and "X-Herd-Priority" in resp.json()["error"]


async def test_affinity_off_sends_no_header(nursery: trio.Nursery, tmp_path: Path) -> None:
    from herd.config import RoutingConfig

    fleet = await start_fleet(nursery, tmp_path, routing=RoutingConfig(affinity=False))
    body = {"model": MODEL, "messages": [SYSTEM], "stream": False}
    resp = await fleet.http.post(fleet.url + "/api/chat", json=body)
    assert resp.status_code == 200 and "x-herd-affinity" not in resp.headers

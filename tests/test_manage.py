"""Model management through the router: pull (progress relayed), delete and copy."""

from __future__ import annotations

from pathlib import Path

import ollama
import trio
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

MODEL = "llama3.2:3b"


def two_nodes() -> dict[str, FakeOllama]:
    return {"a": FakeOllama([FakeModel(MODEL)]), "b": FakeOllama([FakeModel(MODEL)])}


async def test_pull_goes_to_the_roomiest_node_and_relays_progress(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    nodes = two_nodes()
    fleet = await start_fleet(nursery, tmp_path, nodes)
    host = {"cpu_count": 2, "mem_total": 64 * 2**30, "disk_free": 2**40, "load": [0, 0, 0]}
    await fleet.beat("a", host={**host, "mem_available": 8 * 2**30})
    await fleet.beat("b", host={**host, "mem_available": 48 * 2**30})
    client = ollama.Client(host=fleet.url, trust_env=False)
    try:
        steps = await trio.to_thread.run_sync(lambda: list(client.pull("qwen3:8b", stream=True)))
    finally:
        client.close()
    assert steps[0].status == "pulling manifest" and steps[-1].status == "success"
    assert any(s.total and s.completed == s.total for s in steps)
    assert "qwen3:8b" in nodes["b"].models and "qwen3:8b" not in nodes["a"].models
    resp = await fleet.http.post(
        fleet.url + "/api/pull", json={"model": "phi4:14b", "node": "a", "stream": False}
    )
    assert (
        resp.status_code == 200
        and resp.json() == {"status": "success"}
        and resp.headers["x-herd-node"] == "a"
    )
    assert "node" not in nodes["a"].requests[-1][1]
    assert (
        await fleet.http.post(fleet.url + "/api/pull", json={"model": "x", "node": "zz"})
    ).status_code == 404
    assert (await fleet.http.post(fleet.url + "/api/pull", json={"stream": False})).status_code == 400


async def test_delete_everywhere_or_on_one_node_and_copy(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = two_nodes()
    fleet = await start_fleet(nursery, tmp_path, nodes)
    resp = await fleet.http.post(
        fleet.url + "/api/copy", json={"source": MODEL, "destination": "mine:v1", "node": "a"}
    )
    assert resp.status_code == 200 and "mine:v1" in nodes["a"].models and "mine:v1" not in nodes["b"].models
    resp = await fleet.http.request("DELETE", fleet.url + "/api/delete", json={"model": MODEL})
    assert resp.status_code == 200 and resp.json()["nodes"] == {"a": 200, "b": 200}
    assert MODEL not in nodes["a"].models and MODEL not in nodes["b"].models
    resp = await fleet.http.request("DELETE", fleet.url + "/api/delete", json={"model": "ghost:1b"})
    assert resp.status_code == 404


def test_progress_bar_rendering() -> None:
    from herd.pullcmd import render

    assert render({"status": "pulling manifest"}) == "pulling manifest"
    line = render({"status": "pulling abc", "total": 400, "completed": 100}, width=8)
    assert line.endswith("[##......]  25%") and line.startswith("pulling abc")


async def test_herd_pull_command(nursery: trio.Nursery, tmp_path: Path) -> None:
    import io

    from herd.pullcmd import pull

    nodes = two_nodes()
    fleet = await start_fleet(nursery, tmp_path, nodes)
    out = io.StringIO()
    rc = await trio.to_thread.run_sync(lambda: pull(fleet.url, "gemma3:4b", "b", out))
    assert rc == 0 and "gemma3:4b" in nodes["b"].models
    assert (
        "pulling gemma3:4b on b" in out.getvalue()
        and "100%" in out.getvalue()
        and "success" in out.getvalue()
    )
    out = io.StringIO()
    assert await trio.to_thread.run_sync(lambda: pull(fleet.url, "x", "nope", out)) == 1
    assert "no node 'nope'" in out.getvalue()


async def test_auto_pull_when_enabled(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"a": FakeOllama([FakeModel(MODEL)])}
    fleet = await start_fleet(nursery, tmp_path, nodes)

    async def agent_heartbeats() -> None:  # what the node's agent would do: report what is on disk now
        while True:
            await fleet.beat("a")
            await trio.sleep(0.1)

    nursery.start_soon(agent_heartbeats)
    body = {"model": "qwen3:8b", "messages": [], "stream": False}
    assert (await fleet.http.post(fleet.url + "/api/chat", json=body)).status_code == 404  # off by default
    await fleet.http.post(fleet.url + "/fleet/settings", json={"auto_pull": True})
    resp = await fleet.http.post(fleet.url + "/api/chat", json=body, headers={"X-Herd-Strict": "1"})
    assert resp.status_code == 404  # a strict request never triggers it either
    resp = await fleet.http.post(fleet.url + "/api/chat", json=body)
    assert resp.status_code == 200 and resp.headers["x-herd-node"] == "a"
    assert [p for p, _ in nodes["a"].requests if p == "/api/pull"] == ["/api/pull"]


async def test_catalog_follows_pull_delete_and_copy_at_once(nursery: trio.Nursery, tmp_path: Path) -> None:
    """No heartbeat is sent after start: the listings change because the router edits its own view."""
    nodes = two_nodes()
    fleet = await start_fleet(nursery, tmp_path, nodes)

    async def tags() -> dict[str, list[str]]:
        listed = (await fleet.http.get(fleet.url + "/api/tags")).json()["models"]
        return {m["name"]: m["nodes"] for m in listed}

    async def model_ids() -> set[str]:
        return {m["id"] for m in (await fleet.http.get(fleet.url + "/v1/models")).json()["data"]}

    resp = await fleet.http.post(fleet.url + "/api/pull", json={"model": "qwen3:8b", "node": "a"})
    assert resp.status_code == 200 and resp.text.strip().endswith('{"status":"success"}')
    assert (await tags())["qwen3:8b"] == ["a"] and "qwen3:8b" in await model_ids()
    resp = await fleet.http.post(
        fleet.url + "/api/pull", json={"model": "phi4", "node": "b", "stream": False}
    )
    assert resp.status_code == 200 and (await tags())["phi4:latest"] == ["b"]
    resp = await fleet.http.post(fleet.url + "/api/copy", json={"source": MODEL, "destination": "mine:v1"})
    assert resp.status_code == 200
    listed = {m["name"]: m for m in (await fleet.http.get(fleet.url + "/api/tags")).json()["models"]}
    assert listed["mine:v1"]["nodes"] == ["a", "b"] and listed["mine:v1"]["size"] == listed[MODEL]["size"]
    resp = await fleet.http.request("DELETE", fleet.url + "/api/delete", json={"model": MODEL, "node": "b"})
    assert resp.status_code == 200 and (await tags())[MODEL] == ["a"]
    resp = await fleet.http.request("DELETE", fleet.url + "/api/delete", json={"model": MODEL})
    assert resp.status_code == 200 and MODEL not in await tags() and MODEL not in await model_ids()
    # the node's next heartbeat is the truth again
    await fleet.beat("a")
    assert set(await tags()) == {"qwen3:8b", "mine:v1", "phi4:latest"}


def test_catalog_edits_are_pure() -> None:
    from conftest import heartbeat_json

    from herd.fleet.catalog_edit import added, removed
    from herd.fleet.heartbeat import parse_heartbeat
    from herd.fleet.state import FleetSnapshot, apply_heartbeat

    hb = parse_heartbeat(heartbeat_json("a", "http://a", [MODEL], [MODEL]))
    snap = apply_heartbeat(FleetSnapshot(), hb, now=10.0)
    assert added(snap, "ghost", "x", 0.0) is snap and removed(snap, "a", "nope") is snap
    copied = added(snap, "a", "mine", 5.0, like=MODEL)
    node = copied.nodes["a"]
    assert node.models == {MODEL, "mine:latest"} and node.sizes["mine:latest"] == 2_000_000_000
    assert node.last_seen == 10.0 and node.status is snap.nodes["a"].status
    gone = removed(copied, "a", MODEL).nodes["a"]
    assert gone.models == {"mine:latest"} and gone.loaded == frozenset() and gone.heartbeat.loaded == ()
    assert snap.nodes["a"].models == {MODEL}  # the old snapshot is untouched


async def test_auto_pull_skips_paused_nodes_and_tries_the_next_after_a_failure(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    nodes = {name: FakeOllama([FakeModel(MODEL)]) for name in ("a", "b", "c")}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    host = {"cpu_count": 2, "mem_total": 64 * 2**30, "disk_free": 2**40, "load": [0, 0, 0]}
    free = {"a": 60, "b": 40, "c": 20}  # a is the roomiest but paused; b's pull fails; c takes it

    async def agent_heartbeats() -> None:
        while True:
            for name, gb in free.items():
                await fleet.beat(name, host={**host, "mem_available": gb * 2**30})
            await trio.sleep(0.1)

    nursery.start_soon(agent_heartbeats)
    nodes["b"].fail_pull = (500, "disk full")
    await fleet.http.post(fleet.url + "/fleet/nodes/a/pause")
    await fleet.http.post(fleet.url + "/fleet/settings", json={"auto_pull": True})
    body = {"model": "qwen3:8b", "messages": [], "stream": False}
    resp = await fleet.http.post(fleet.url + "/api/chat", json=body)
    assert resp.status_code == 200 and resp.headers["x-herd-node"] == "c"
    pulls = {name: [p for p, _ in n.requests if p == "/api/pull"] for name, n in nodes.items()}
    assert pulls == {"a": [], "b": ["/api/pull"], "c": ["/api/pull"]}

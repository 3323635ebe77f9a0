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

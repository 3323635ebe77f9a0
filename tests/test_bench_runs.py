"""Benchmarks end to end: a real router, fake nodes of different speeds, `POST/GET/DELETE /fleet/benchmarks`,
progress frames on the dashboard WebSocket, results in the trace DB, real traffic first."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import trio
from fake_ollama import FakeModel, FakeOllama
from harness import Fleet, start_fleet
from trio_websocket import open_websocket_url

from herd.insight import prompts
from herd.insight.bench import priors
from herd.routing.score import Facts
from herd.store import bench_queries, queries

MODEL = "llama3.2:3b"


def node(chunk_delay: float, prompt_delay: float, **kw: Any) -> FakeOllama:
    return FakeOllama(
        [FakeModel(MODEL), FakeModel("qwen3:8b")],
        loaded=[MODEL],
        chunk_delay=chunk_delay,
        prompt_delay=prompt_delay,
        num_chunks=20,
        **kw,
    )


async def wait_status(fleet: Fleet, run_id: str, *statuses: str) -> dict[str, Any]:
    while True:
        run = (await fleet.http.get(f"{fleet.url}/fleet/benchmarks/{run_id}")).json()
        if run["status"] in statuses:
            return run
        await trio.sleep(0.5)


async def test_a_run_over_two_nodes_ranks_the_faster_one_faster(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    nodes = {"fast": node(0.02, 0.0005), "slow": node(0.1, 0.004, load_delay=3.0)}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    hooked: list[Any] = []
    fleet.router.bench.sinks.append(hooked.append)  # where the routing performance model takes its priors
    ws_url = fleet.url.replace("http://", "ws://") + "/dashboard/ws"
    frames: list[dict[str, Any]] = []
    async with open_websocket_url(ws_url) as ws:
        assert json.loads(await ws.get_message())["type"] == "fleet"
        resp = await fleet.http.post(
            fleet.url + "/fleet/benchmarks", json={"models": [MODEL, "qwen3:8b"], "parallel": 2}
        )
        assert resp.status_code == 202, resp.text
        run_id = resp.json()["id"]
        while True:
            with trio.fail_after(600):  # hang guard only (virtual time)
                frame = json.loads(await ws.get_message())
            if frame["type"] == "benchmark":
                frames.append(frame["data"])
                if frame["data"]["status"] == "done":
                    break
    progress = [f["progress"] for f in frames]
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(set(progress)) > 5
    run = await wait_status(fleet, run_id, "done")
    assert run["prompt_set"] == prompts.VERSION and run["steps_total"] == 4 * (len(prompts.PROMPTS) + 2)
    by = {(r["node_id"], r["model"], r["parallel"]): r for r in run["results"]}
    assert set(by) == {(n, m, p) for n in nodes for m in (MODEL, "qwen3:8b") for p in (1, 2)}
    fast, slow = by[("fast", MODEL, 1)], by[("slow", MODEL, 1)]
    assert fast["gen_tps"] == 50.0 and slow["gen_tps"] == 10.0  # the nodes' own eval counters
    assert fast["prompt_tps"] == 2000.0 and slow["prompt_tps"] == 250.0
    assert (
        fast["ttft_s"] < slow["ttft_s"] and fast["errors"] == 0 and fast["requests"] == len(prompts.PROMPTS)
    )
    assert by[("slow", "qwen3:8b", 1)]["load_s"] == 3.0  # a cold model: its load measured once
    assert by[("fast", MODEL, 2)]["aggregate_tps"] > fast["gen_tps"]  # two at once make more in total
    assert fast["cpu_count"] == 2 and fast["backend_version"] == "0.12.3" and fast["backend"] == "ollama"
    assert fleet.router.slots.total() == 0 and not fleet.router.registry.paused
    assert "qwen3:8b" in nodes["slow"].loaded  # the runner loaded it as a request would

    while fleet.router.traces.written < 9:  # noqa: ASYNC110 (the single writer flushes results and the run)
        await trio.sleep(0.1)
    conn = queries.connect(tmp_path / "traces.db")
    try:
        stored = bench_queries.results(conn)
        runs = bench_queries.runs(conn)
        traces = conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
    finally:
        conn.close()
    assert traces == 0 and len(stored) == 8 and runs[0]["id"] == run_id and runs[0]["status"] == "done"
    best = priors(stored)
    assert best[("fast", MODEL)].parallel == 1 and best[("fast", MODEL)].gen_tps == 50.0
    assert bench_queries.load_priors(tmp_path / "traces.db") == best
    assert sorted(hooked, key=lambda r: r.ts) == stored
    assert bench_queries.load_priors(tmp_path / "none.db") == {}
    # wired into the router: the single-request results seeded its performance model
    perf = fleet.router.latency.all[("slow", MODEL)].perf
    assert perf is not None and perf.gen_rate == 10.0 and perf.prompt_rate == 250.0
    for node_id in nodes:  # the run took minutes of virtual time: the nodes report again
        await fleet.beat(node_id)
    ranked = fleet.router.services.proxy.ranked(Facts(MODEL))
    assert ranked[0].node.node_id == "fast" and ranked[0].est_wait < ranked[1].est_wait


async def test_cancel_stops_a_running_benchmark(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    nodes = {"n1": node(1.0, 0.0)}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    run_id = (await fleet.http.post(fleet.url + "/fleet/benchmarks", json={})).json()["id"]
    await wait_status(fleet, run_id, "running")
    while not nodes["n1"].active_streams:  # noqa: ASYNC110 (the fake is another task)
        await trio.sleep(0.1)
    resp = await fleet.http.delete(f"{fleet.url}/fleet/benchmarks/{run_id}")
    assert resp.status_code == 200
    run = await wait_status(fleet, run_id, "cancelled")
    assert run["steps_done"] < run["steps_total"]
    while nodes["n1"].active_streams:  # noqa: ASYNC110 (the node sees the disconnect)
        await trio.sleep(0.1)
    assert nodes["n1"].cancelled_streams == 1 and fleet.router.slots.total() == 0
    assert (await fleet.http.delete(f"{fleet.url}/fleet/benchmarks/{run_id}")).json()["status"] == "cancelled"
    assert (await fleet.http.delete(f"{fleet.url}/fleet/benchmarks/nope")).status_code == 404


async def test_real_traffic_goes_first(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fake = node(0.1, 0.0)  # 2 s a request
    fleet = await start_fleet(nursery, tmp_path, {"n1": fake})
    await fleet.beat("n1", parallel=1)
    run_id = (await fleet.http.post(fleet.url + "/fleet/benchmarks", json={"parallel": 1})).json()["id"]
    while not fake.active_streams:  # noqa: ASYNC110 (the first benchmark request is running)
        await trio.sleep(0.1)
    real = {"model": MODEL, "messages": [{"role": "user", "content": "real work"}], "stream": False}
    async with trio.open_nursery() as clients:
        clients.start_soon(partial(fleet.http.post, fleet.url + "/api/chat", json=real))
        await trio.sleep(1)
        assert fleet.router.queue.depths() == {MODEL: 1}  # the benchmark holds the node's only slot
        assert (await fleet.http.get(f"{fleet.url}/fleet/benchmarks/{run_id}")).json()["steps_done"] == 0
    done = await wait_status(fleet, run_id, "done")
    assert done["results"][0]["errors"] == 0
    sent = [json.dumps(b) for p, b in fake.requests if p == "/api/chat"]
    real_at = next(i for i, b in enumerate(sent) if "real work" in b)
    assert real_at == 1 and len(sent) == len(prompts.PROMPTS) + 1  # served right after the one in flight


async def test_a_benchmark_waits_for_real_requests_running_on_its_node(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fake = node(0.1, 0.0)  # 2 s a request; the node takes 4 at once, so nothing queues
    fleet = await start_fleet(nursery, tmp_path, {"n1": fake})
    real = {"model": MODEL, "messages": [{"role": "user", "content": "real work"}], "stream": False}
    done_at: list[float] = []

    async def ask() -> None:
        assert (await fleet.http.post(fleet.url + "/api/chat", json=real)).status_code == 200
        done_at.append(trio.current_time())

    async with trio.open_nursery() as clients:
        clients.start_soon(ask)
        while not fake.active_streams:  # noqa: ASYNC110 (the real request is running)
            await trio.sleep(0.05)
        run_id = (await fleet.http.post(fleet.url + "/fleet/benchmarks", json={"parallel": 1})).json()["id"]
        await trio.sleep(0.5)
        run = (await fleet.http.get(f"{fleet.url}/fleet/benchmarks/{run_id}")).json()
        assert run["status"] == "running" and "running on n1" in run["waiting"]
        assert len([p for p, _ in fake.requests if p == "/api/chat"]) == 1  # nothing sent beside it
    run = await wait_status(fleet, run_id, "done")
    assert run["results"][0]["errors"] == 0 and run["waiting"] is None
    assert "real work" in json.dumps(fake.requests[0][1]) and len(done_at) == 1


async def test_bad_requests_are_4xx(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    url = fleet.url + "/fleet/benchmarks"
    for body, status in (
        ({"parallel": 0}, 400),
        ({"parallel": "2"}, 400),
        ({"nodes": "n1"}, 400),
        ({"nodes": ["ghost"]}, 404),
        ({"models": ["ghost:1b"]}, 404),
        ({"colour": "red"}, 400),
        ([1], 400),
    ):
        resp = await fleet.http.post(url, json=body)
        assert resp.status_code == status, (body, resp.text)
        assert "error" in resp.json()
    assert (await fleet.http.get(url + "/nope")).status_code == 404
    assert (await fleet.http.get(url)).json() == {"runs": []}


async def test_an_openai_node_reports_its_speeds_from_usage_and_timings(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    from fake_openai import FakeOpenAI
    from test_openai_backend import join

    fleet = await start_fleet(nursery, tmp_path, {})
    fake = FakeOpenAI("smollm2")
    await nursery.start(fake.run)
    await join(fleet, "llama", fake)
    resp = await fleet.http.post(fleet.url + "/fleet/benchmarks", json={"models": ["smollm2"], "parallel": 1})
    assert resp.status_code == 202, resp.text
    run = await wait_status(fleet, resp.json()["id"], "done", "failed")
    (result,) = run["results"]
    assert result["node_id"] == "llama" and result["errors"] == 0 and result["backend"] == "openai"
    assert result["gen_tps"] == round(4 / 0.04025, 1) and result["load_s"] is None  # llama.cpp's timings
    chats = [b for p, b in fake.requests if p == "/v1/chat/completions"]
    assert len(chats) == len(prompts.PROMPTS) and chats[0]["max_tokens"] == prompts.PROMPTS[0].num_predict

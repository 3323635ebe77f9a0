"""Slots, the holding queue, busy nodes, breakers, the stream watchdog and pre-warming through a real router."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import trio
from fake_ollama import FakeModel, FakeOllama
from harness import Fleet, start_fleet

from herd.config import RoutingConfig, UpstreamConfig

MODEL = "llama3.2:3b"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def slow_node(**kw: object) -> FakeOllama:
    return FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=1.0, num_chunks=5, **kw)


async def settle(fleet: Fleet) -> None:
    """Wait until the router holds no slot and no waiter (the hang guard is the test's own clock)."""
    while fleet.router.slots.total() or fleet.router.queue.depths():  # noqa: ASYNC110 (state of another task)
        await trio.sleep(0.01)


async def test_full_node_queues_fifo_then_serves(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fleet = await start_fleet(nursery, tmp_path, {"n1": slow_node()})
    await fleet.beat("n1", parallel=1)
    results: list[tuple[int, float]] = []

    async def ask(i: int) -> None:
        resp = await fleet.http.post(fleet.url + "/api/chat", json=CHAT)
        assert resp.status_code == 200 and json.loads(resp.text.splitlines()[-1])["done"]
        results.append((i, trio.current_time()))

    async with trio.open_nursery() as clients:
        for i in range(3):
            clients.start_soon(ask, i)
            await trio.sleep(0.1)
        await trio.sleep(1)
        queue = (await fleet.http.get(fleet.url + "/fleet/queue")).json()
        assert queue["waiting"] == 2 and queue["in_flight"] == 1
        assert queue["queues"][0]["model"] == MODEL and queue["queues"][0]["capacity"] == 1
    assert [i for i, _ in results] == [0, 1, 2]
    assert fleet.nodes["n1"].completed_streams == 3
    # served one after another: nothing waited invisibly inside the node
    assert results[1][1] - results[0][1] >= 5 and results[2][1] - results[1][1] >= 5
    await settle(fleet)


async def test_queue_timeout_is_429_with_retry_after(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    node = FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=100.0, num_chunks=2)
    fleet = await start_fleet(nursery, tmp_path, {"n1": node}, routing=RoutingConfig(queue_timeout=10))
    await fleet.beat("n1", parallel=1)
    async with trio.open_nursery() as clients:
        clients.start_soon(partial(fleet.http.post, fleet.url + "/api/chat", json=CHAT))
        await trio.sleep(1)
        resp = await fleet.http.post(fleet.url + "/v1/chat/completions", json=CHAT)
        assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
        assert resp.json()["error"]["type"] == "rate_limit_error"
        clients.cancel_scope.cancel()
    await settle(fleet)


async def test_slots_return_to_zero_after_cuts_at_every_stage(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    node = FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=1.0, num_chunks=5)
    fleet = await start_fleet(nursery, tmp_path, {"n1": node}, upstream=UpstreamConfig(idle_timeout=10))
    await fleet.beat("n1", parallel=1)
    url = fleet.url + "/api/chat"

    node.fail_next.append((500, "before first byte"))  # 1. fails before the first byte
    assert (await fleet.http.post(url, json=CHAT)).status_code == 502
    await settle(fleet)
    node.fail_after_chunks = 2  # 2. cut mid-stream
    assert "error" in (await fleet.http.post(url, json=CHAT)).text.splitlines()[-1]
    await settle(fleet)
    node.fail_after_chunks, node.stall_after_chunks = None, 2  # 3. backend goes silent: the watchdog cuts it
    resp = await fleet.http.post(url, json=CHAT)
    assert "sent nothing for 10 s" in json.loads(resp.text.splitlines()[-1])["error"]
    assert fleet.router.services.recorder.recent[-1].error
    await settle(fleet)
    node.stall_after_chunks = None
    async with fleet.http.stream("POST", url, json=CHAT) as resp:  # 4. client leaves mid-stream
        async for _ in resp.aiter_lines():
            break
    await settle(fleet)
    async with trio.open_nursery() as clients:  # 5. client leaves while waiting in the queue
        clients.start_soon(partial(fleet.http.post, url, json=CHAT))
        await trio.sleep(0.5)
        with trio.move_on_after(1):
            await fleet.http.post(url, json=CHAT)
        assert fleet.router.queue.depths() == {}
        clients.cancel_scope.cancel()
    await settle(fleet)
    assert (await fleet.http.post(url, json={"model": "nope", "messages": []})).status_code == 404  # 6.
    await settle(fleet)
    assert fleet.router.slots.in_flight == {}


async def test_busy_node_is_marked_full_not_hammered(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"a": FakeOllama([FakeModel(MODEL)], loaded=[MODEL]), "b": FakeOllama([FakeModel(MODEL)])}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    nodes["a"].fail_next.append((503, "server busy, please try again.  maximum pending requests exceeded"))
    resp = await fleet.http.post(fleet.url + "/api/chat", json={**CHAT, "stream": False})
    assert resp.status_code == 200 and resp.headers["x-herd-node"] == "b"
    assert not fleet.router.slots.has_room("a", MODEL)  # marked full for a moment
    assert len(nodes["a"].requests) == 1


async def test_breaker_skips_a_dead_node(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"a": FakeOllama([FakeModel(MODEL)], loaded=[MODEL]), "b": FakeOllama([FakeModel(MODEL)])}
    fleet = await start_fleet(nursery, tmp_path, nodes, routing=RoutingConfig(breaker_threshold=2))
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    await fleet.beat("a", backend_url=dead, parallel=8)
    for _ in range(4):
        resp = await fleet.http.post(fleet.url + "/api/generate", json={"model": MODEL, "prompt": "x"})
        assert resp.status_code == 200 and resp.headers["x-herd-node"] == "b"
    breakers = fleet.router.breakers
    assert breakers.state("a").failures == 2 and not breakers.allows("a", trio.current_time())


async def test_prewarmer_loads_the_runner_up_when_the_queue_is_deep(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    hot = FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=5.0, num_chunks=4)
    cold = FakeOllama([FakeModel(MODEL)])
    fleet = await start_fleet(nursery, tmp_path, {"hot": hot, "cold": cold})
    await fleet.beat("hot", parallel=1)
    await fleet.beat("cold", parallel=1)
    async with trio.open_nursery() as clients:
        for _ in range(4):
            clients.start_soon(partial(fleet.http.post, fleet.url + "/api/chat", json=CHAT))
            await trio.sleep(0.01)
        await trio.sleep(3)
        # the cold node took nothing yet: waiting for the hot one beats a cold load ...
        assert not any(p == "/api/chat" for p, _ in cold.requests)
        assert fleet.router.queue.depth(MODEL) == 3
        assert ("cold", MODEL) in fleet.router.prewarmer.loaded
        # ... and the deep queue made the pre-warmer load it on the runner-up
        assert any(p == "/api/generate" and not b.get("prompt") for p, b in cold.requests)
        await fleet.beat("cold", parallel=1)  # its next heartbeat shows the model hot
        await trio.sleep(1)
        assert any(p == "/api/chat" for p, _ in cold.requests)  # and waiting requests go there now
        clients.cancel_scope.cancel()


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
async def test_records_carry_node_wait_and_tokens(nursery: trio.Nursery, tmp_path: Path, path: str) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    resp = await fleet.http.post(fleet.url + path, json=CHAT)
    assert resp.status_code == 200
    recent = fleet.router.services.recorder.recent
    with trio.fail_after(10):  # the record is finished when the ASGI call returns, just after the reply
        while not recent:  # noqa: ASYNC110 (state of another task)
            await trio.sleep(0.01)
    rec = recent[-1]
    assert rec.node_id == "n1" and rec.status == 200 and rec.error is None and rec.done
    assert rec.completion_tokens and rec.prompt_tokens and rec.tokens_per_s and rec.ttft is not None
    assert fleet.router.latency.stats("n1", MODEL) is not None


async def test_tags_from_body_and_header_never_reach_the_node(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    body = {**CHAT, "stream": False, "metadata": {"tags": ["billing", "nightly"]}}
    resp = await fleet.http.post(
        fleet.url + "/api/chat", json=body, headers={"X-Herd-Tags": "agent-7, billing"}
    )
    assert resp.status_code == 200
    assert "metadata" not in fleet.nodes["n1"].requests[-1][1]
    recent = fleet.router.services.recorder.recent
    with trio.fail_after(10):
        while not recent:  # noqa: ASYNC110 (state of another task)
            await trio.sleep(0.01)
    assert recent[-1].tags == ("agent-7", "billing", "nightly")
    bad = await fleet.http.post(fleet.url + "/v1/chat/completions", json={**CHAT, "metadata": {"tags": [1]}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "metadata.tags"


async def test_paused_node_is_skipped_until_resumed(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"a": FakeOllama([FakeModel(MODEL)], loaded=[MODEL]), "b": FakeOllama([FakeModel(MODEL)])}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    assert (await fleet.http.post(fleet.url + "/fleet/nodes/a/pause")).json() == {
        "node_id": "a",
        "paused": True,
    }
    resp = await fleet.http.post(fleet.url + "/api/chat", json={**CHAT, "stream": False})
    assert resp.headers["x-herd-node"] == "b"
    status = (await fleet.http.get(fleet.url + "/fleet/status")).json()
    assert {n["node_id"]: n["paused"] for n in status["nodes"]} == {"a": True, "b": False}
    await fleet.http.post(fleet.url + "/fleet/nodes/a/resume")
    resp = await fleet.http.post(fleet.url + "/api/chat", json={**CHAT, "stream": False})
    assert resp.headers["x-herd-node"] == "a"
    assert (await fleet.http.post(fleet.url + "/fleet/nodes/zzz/pause")).status_code == 404

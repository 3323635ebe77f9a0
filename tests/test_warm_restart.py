"""Warm restart: the router remembers its fleet in the data dir; after a restart a known model gets 503 with
Retry-After (or waits for its node) instead of 404, and agents report again as soon as the router answers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from conftest import heartbeat_json
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet
from test_node_agent import agent, free_port

from herd.config import FleetConfig, RouterConfig
from herd.fleet.memory import Remembered, decode, encode, merged, waiting_for
from herd.fleet.state import FleetSnapshot
from herd.node.agent import HttpSink
from herd.nursery.router import Router

MODEL = "llama3.2:3b"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}


@pytest.fixture
def io_clock() -> trio.testing.MockClock:
    """Virtual time that jumps only after 0.25 s of real idleness. These tests talk to a real router over real
    sockets while the warm-restart grace runs: the plain autojump clock would jump to the grace's end while a
    request is merely in flight on loopback (more so on a busy machine)."""
    return trio.testing.MockClock(autojump_threshold=0.25)


def test_memory_file_round_trip_and_damage() -> None:
    nodes = {"a": ("http://10.0.0.1:11434", frozenset({MODEL, "qwen3:8b"}))}
    assert decode(encode(nodes)).nodes == nodes
    assert decode(b"").nodes == {} and decode(b"[1]").nodes == {} and decode(b'{"nodes": 3}').nodes == {}
    assert decode(b'{"nodes": {"a": {"models": [1, "m", ""]}, "b": "x"}}').nodes == {
        "a": ("", frozenset({"m"}))
    }
    memory = Remembered(nodes)
    assert (
        waiting_for(memory, FleetSnapshot(), MODEL) == ["a"]
        and waiting_for(memory, FleetSnapshot(), "x") == []
    )
    # while starting, remembered nodes that have not reported yet are kept in the file
    assert merged({}, memory, FleetSnapshot(), starting=True) == nodes
    assert merged({}, memory, FleetSnapshot(), starting=False) == {}


async def test_a_running_router_writes_its_fleet(nursery: trio.Nursery, tmp_path: Path) -> None:
    await start_fleet(nursery, tmp_path)
    path = tmp_path / "fleet.json"
    with trio.fail_after(10):
        while not path.exists():  # noqa: ASYNC110 (the memory writes in a worker thread)
            await trio.sleep(0.05)
    stored = json.loads(path.read_text())
    assert stored["nodes"]["n1"]["models"] == [MODEL]
    assert not (tmp_path / "fleet.json.tmp").exists()


async def test_after_a_restart_a_known_model_is_starting_not_missing(
    nursery: trio.Nursery, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    fake = FakeOllama([FakeModel(MODEL)], loaded=[MODEL])
    await nursery.start(fake.run)
    (tmp_path / "fleet.json").write_bytes(encode({"n1": (fake.url, frozenset({MODEL}))}))
    cfg = RouterConfig(data_dir=tmp_path, host="127.0.0.1", port=0, local_node=False, mdns=False)
    router = Router(cfg)
    (url,) = await nursery.start(router.run)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        start = trio.current_time()
        resp = await http.post(url + "/api/chat", json=CHAT)  # waits one heartbeat interval, then 503
        assert resp.status_code == 503 and resp.headers["retry-after"] == "2"
        assert "starting" in resp.json()["error"]
        assert trio.current_time() - start == cfg.fleet.heartbeat_interval
        resp = await http.post(url + "/v1/chat/completions", json=CHAT)
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "fleet_starting"
        unknown = await http.post(url + "/api/chat", json={**CHAT, "model": "nope"})
        assert unknown.status_code == 404
        # a request that arrives before the node reports is served as soon as it does
        start = trio.current_time()
        async with trio.open_nursery() as inner:

            async def report() -> None:
                await trio.sleep(1)
                hb = heartbeat_json("n1", fake.url, [MODEL], [MODEL])
                assert (await http.post(url + "/heartbeat", json=hb)).status_code == 200

            inner.start_soon(report)
            resp = await http.post(url + "/api/chat", json=CHAT)
        assert resp.status_code == 200 and resp.headers["x-herd-node"] == "n1"
        assert trio.current_time() - start == 1


async def test_grace_ends_with_a_404_for_a_model_nobody_brought_back(
    nursery: trio.Nursery, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    (tmp_path / "fleet.json").write_bytes(
        encode({"gone": ("http://127.0.0.1:9", frozenset({MODEL, "whisper-1"}))})
    )
    fleet = FleetConfig(heartbeat_interval=1.0, offline_after=5.0)
    cfg = RouterConfig(data_dir=tmp_path, host="127.0.0.1", port=0, local_node=False, mdns=False, fleet=fleet)
    (url,) = await nursery.start(Router(cfg).run)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        first = await http.post(url + "/api/chat", json=CHAT)
        assert first.status_code == 503, first.text
        assert (await http.post(url + "/api/show", json={"model": MODEL})).status_code == 503
        stt = await http.post(
            url + "/v1/audio/transcriptions", files={"file": ("a.wav", b"x")}, data={"model": "whisper-1"}
        )
        assert stt.status_code == 503 and stt.json()["error"]["code"] == "fleet_starting"
        await trio.sleep(2 * fleet.offline_after)
        assert (await http.post(url + "/api/chat", json=CHAT)).status_code == 404


async def test_an_agent_reports_within_a_second_of_the_router_coming_back(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeOllama([FakeModel(MODEL)])
    await nursery.start(fake.run)
    port = await free_port()
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:

        async def locate() -> str:
            return f"http://127.0.0.1:{port}"

        a = agent(client, fake.url, HttpSink(client, locate), tmp_path / "node", interval=5, backoff_max=30)
        (tmp_path / "node").mkdir()
        await nursery.start(a.run)
        await trio.sleep(70)  # the router is down: the agent's backoff has grown to 30 s
        assert a.sent == 0
        cfg = RouterConfig(data_dir=tmp_path, host="127.0.0.1", port=port, local_node=False, mdns=False)
        router = Router(cfg)
        await nursery.start(router.run)
        back = trio.current_time()
        while "n1" not in router.registry.snapshot.nodes:  # noqa: ASYNC110 (the agent's progress)
            await trio.sleep(0.05)
        assert trio.current_time() - back <= 1.5  # one poll, not the rest of a 30 s backoff


async def test_a_request_held_for_a_starting_node_then_queues_as_usual(
    nursery: trio.Nursery, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    fake = FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=2.0, num_chunks=4)  # 8 s per reply
    await nursery.start(fake.run)
    (tmp_path / "fleet.json").write_bytes(encode({"n1": (fake.url, frozenset({MODEL}))}))
    cfg = RouterConfig(data_dir=tmp_path, host="127.0.0.1", port=0, local_node=False, mdns=False)
    (url,) = await nursery.start(Router(cfg).run)
    statuses: list[int] = []
    async with httpx.AsyncClient(trust_env=False, timeout=60) as http:

        async def chat() -> None:
            statuses.append((await http.post(url + "/api/chat", json=CHAT)).status_code)

        async with trio.open_nursery() as clients:
            clients.start_soon(chat)
            clients.start_soon(chat)
            await trio.sleep(1)
            hb = heartbeat_json("n1", fake.url, [MODEL], [MODEL], parallel=1)
            assert (await http.post(url + "/heartbeat", json=hb)).status_code == 200
    # one took the only slot; the other, past the 5 s hold, waited for it like any queued request
    assert statuses == [200, 200]

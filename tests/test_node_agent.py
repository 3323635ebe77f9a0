"""The node agent: heartbeat content, interval and backoff, backend down/up, draining, the local node, the lock."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import httpx
import pytest
import trio
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

from herd.fleet.heartbeat import Heartbeat, HostStats
from herd.node.agent import Agent, HttpSink, SinkError, advertised_url
from herd.node.collect import host_stats
from herd.node.local import LocalNode
from herd.nursery.node import DataDirBusy, data_dir_lock

MODEL = "llama3.2:3b"


class RecordingSink:
    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts: list[float] = []
        self.got: list[Heartbeat] = []

    def describe(self) -> str:
        return "test sink"

    async def ready(self) -> None:
        return None

    async def answers(self) -> bool:
        return len(self.attempts) >= self.fail_first  # the router is back once the failures are used up

    async def send(self, hb: Heartbeat) -> None:
        self.attempts.append(trio.current_time())
        if len(self.attempts) <= self.fail_first:
            raise SinkError("router down")
        self.got.append(hb)


async def free_port() -> int:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def fixed_host(_: Path) -> HostStats:
    """psutil runs in a worker thread, and the autojump clock jumps while a thread works: tests on that clock
    use fixed host stats (the real collector is exercised by the first test)."""
    return HostStats(cpu_percent=1.0, cpu_count=2, mem_total=100, mem_available=50, disk_free=10)


def agent(client: httpx.AsyncClient, url: str, sink: object, tmp_path: Path, **kw: object) -> Agent:
    kw.setdefault("host_probe", fixed_host)
    return Agent(node_id="n1", backend_url=url, data_dir=tmp_path, client=client, sink=sink, **kw)  # type: ignore[arg-type]


async def test_heartbeats_reach_the_router_with_backend_state(nursery: trio.Nursery, tmp_path: Path) -> None:
    fake = FakeOllama([FakeModel(MODEL), FakeModel("qwen3:8b")], loaded=[MODEL], version="0.12.7")
    await nursery.start(fake.run)
    fleet = await start_fleet(nursery, tmp_path, nodes={})
    async with httpx.AsyncClient(trust_env=False) as client:

        async def locate() -> str:
            return fleet.url

        sink = HttpSink(client, locate)
        a = agent(client, fake.url, sink, tmp_path, interval=0.2, parallel=2, host_probe=host_stats)
        async with trio.open_nursery() as inner:
            await inner.start(a.run)
            while a.sent < 2:  # noqa: ASYNC110 (counts another task's progress)
                await trio.sleep(0.01)
            inner.cancel_scope.cancel()
    status = (await fleet.http.get(fleet.url + "/fleet/status")).json()
    (node,) = status["nodes"]
    assert node["node_id"] == "n1" and node["status"] == "online" and node["routable"]
    assert node["backend_version"] == "0.12.7" and node["models"] == [MODEL, "qwen3:8b"]
    assert [m["name"] for m in node["loaded"]] == [MODEL]
    assert node["host"]["mem_total"] > 0 and node["host"]["cpu_count"] > 0
    hb = a.last
    assert hb is not None and hb.parallel == 2 and hb.agent_version and hb.host.disk_free > 0
    assert (
        hb.loaded[0]["size_vram"] >= 0 and "context_length" in hb.loaded[0] and "expires_at" in hb.loaded[0]
    )
    assert hb.models[0]["digest"] and hb.models[0]["details"]["family"]
    resp = await fleet.http.post(
        fleet.url + "/api/chat", json={"model": MODEL, "messages": [], "stream": False}
    )
    assert resp.status_code == 200 and resp.headers["x-herd-node"] == "n1"


async def test_backend_down_then_up(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    port = await free_port()
    sink = RecordingSink()
    async with httpx.AsyncClient(trust_env=False) as client:
        a = agent(client, f"http://127.0.0.1:{port}", sink, tmp_path, interval=5)
        async with trio.open_nursery() as inner:
            await inner.start(a.run)
            await trio.sleep(11)
            assert len(sink.got) == 3 and not any(hb.backend_up for hb in sink.got)
            assert sink.got[0].models == () and sink.got[0].backend_version is None
            fake = FakeOllama([MODEL], loaded=[MODEL])
            fake.bind = f"127.0.0.1:{port}"
            await nursery.start(fake.run)
            await trio.sleep(5)
            assert sink.got[-1].backend_up and [m["name"] for m in sink.got[-1].models] == [MODEL]
            inner.cancel_scope.cancel()


async def test_router_down_backs_off_then_recovers(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeOllama([MODEL])
    await nursery.start(fake.run)
    sink = RecordingSink(fail_first=5)
    async with httpx.AsyncClient(trust_env=False) as client:
        a = agent(client, fake.url, sink, tmp_path, interval=5, backoff_max=30)
        start = trio.current_time()
        async with trio.open_nursery() as inner:
            await inner.start(a.run)
            await trio.sleep(120)
            inner.cancel_scope.cancel()
    gaps = [round(b - a_) for a_, b in zip(sink.attempts, sink.attempts[1:], strict=False)]
    # doubling backoff, capped; the first poll that finds the router answering (1 s) ends it; then the interval
    assert gaps[:6] == [5, 10, 20, 30, 1, 5]
    assert sink.attempts[0] - start < 1 and len(sink.got) >= 2


async def test_draining_heartbeat_on_shutdown(nursery: trio.Nursery, tmp_path: Path) -> None:
    fake = FakeOllama([MODEL])
    await nursery.start(fake.run)
    sink = RecordingSink()
    async with httpx.AsyncClient(trust_env=False) as client:
        a = agent(client, fake.url, sink, tmp_path, interval=5)
        async with trio.open_nursery() as inner:
            await inner.start(a.run)
            while not sink.got:  # noqa: ASYNC110 (counts another task's progress)
                await trio.sleep(0.01)
            inner.cancel_scope.cancel()
        assert await a.drain()
    assert [hb.draining for hb in sink.got] == [False, True]


async def test_local_node_joins_only_once_its_backend_answers(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    port = await free_port()
    fleet = await start_fleet(nursery, tmp_path, nodes={}, local_ollama_url=f"http://127.0.0.1:{port}")
    local = LocalNode(fleet.router.cfg, fleet.router.registry.ingest, host_probe=fixed_host)
    await nursery.start(local.run)
    await trio.sleep(20)
    assert fleet.router.registry.snapshot.nodes == {}
    fake = FakeOllama([MODEL], loaded=[MODEL])
    fake.bind = f"127.0.0.1:{port}"
    await nursery.start(fake.run)
    await trio.sleep(6)
    node = fleet.router.registry.snapshot.nodes[fleet.router.cfg.local_node_id]
    assert node.routable and MODEL in node.loaded


def test_advertised_url() -> None:
    assert (
        advertised_url("http://127.0.0.1:11434", "http://127.0.0.1:11435", None) == "http://127.0.0.1:11434"
    )
    assert advertised_url("http://10.1.2.3:11434/", "http://10.1.2.1:11435", None) == "http://10.1.2.3:11434"
    assert advertised_url("http://127.0.0.1:11434", None, "http://box:11434/") == "http://box:11434"
    routed = advertised_url("http://localhost:11434", "http://192.0.2.77:11435", None)
    assert routed.endswith(":11434") and "localhost" not in routed


def test_one_agent_per_data_dir(tmp_path: Path) -> None:
    with data_dir_lock(tmp_path / "a"), pytest.raises(DataDirBusy), data_dir_lock(tmp_path / "a"):
        pass
    with data_dir_lock(tmp_path / "a"), data_dir_lock(tmp_path / "b"):
        pass


def test_advertised_url_over_ipv6_is_bracketed() -> None:
    target = "2001:db8::77"  # documentation prefix: only the route is looked up, nothing is sent
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.connect((target, 9))
    except OSError:
        pytest.skip("no IPv6 route on this machine")
    routed = advertised_url("http://127.0.0.1:11434", f"http://[{target}]:11435", None)
    host = routed.removeprefix("http://").rsplit(":", 1)[0]
    assert host.startswith("[") and host.endswith("]") and ipaddress.ip_address(host[1:-1]).version == 6


async def test_a_router_that_refuses_heartbeats_gets_the_full_backoff(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    class Refusing(RecordingSink):
        async def send(self, hb: Heartbeat) -> None:
            self.attempts.append(trio.current_time())
            raise SinkError("router answered 400: bad heartbeat", answered=True)

        async def answers(self) -> bool:
            return True  # it is up; it just does not take what we send

    fake = FakeOllama([MODEL])
    await nursery.start(fake.run)
    sink = Refusing()
    async with httpx.AsyncClient(trust_env=False) as client:
        a = agent(client, fake.url, sink, tmp_path, interval=5, backoff_max=30)
        async with trio.open_nursery() as inner:
            await inner.start(a.run)
            await trio.sleep(60)
            inner.cancel_scope.cancel()
    gaps = [round(b - a_) for a_, b in zip(sink.attempts, sink.attempts[1:], strict=False)]
    assert gaps[:3] == [5, 10, 20]  # no fast polling into a router that refuses

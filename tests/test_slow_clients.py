"""Slow clients against the real server: a request head has `header_timeout` seconds (keep-alive pauses keep
their 75 s), the connection budget evicts idle and slow connections first, and a slowloris burst against a
router with few file descriptors does not lock a normal client out."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import trio
import trio.testing
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet
from test_node_agent import free_port

from herd.cli import build_parser, router_config

HEAD = b"GET /api/version HTTP/1.1\r\nHost: localhost\r\n"  # a loopback router takes local Host names only


async def connect(url: str) -> trio.SocketStream:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return await trio.open_tcp_stream(host, int(port))


async def closed(stream: trio.SocketStream) -> bool:
    """Whether the server closed the connection (read until EOF or reset); closes our end too."""
    try:
        while await stream.receive_some(65536):
            pass
    except trio.BrokenResourceError:
        pass
    await stream.aclose()
    return True


def test_flags() -> None:
    env = {"FLEET_HEADER_TIMEOUT": "3", "FLEET_MAX_CONNECTIONS": "100"}
    cfg = router_config(build_parser(env).parse_args(["run"]), env)
    assert (cfg.header_timeout, cfg.max_connections) == (3.0, 100)
    cfg = router_config(build_parser({}).parse_args(["run", "--header-timeout", "0"]), {})
    assert (cfg.header_timeout, cfg.max_connections) == (0.5, 0)


async def test_a_trickled_head_gets_the_header_timeout_and_keep_alive_keeps_its_own(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fleet = await start_fleet(nursery, tmp_path, header_timeout=5.0)
    slow = await connect(fleet.url)
    await slow.send_all(HEAD)  # never finished
    start = trio.current_time()
    assert await closed(slow)
    assert trio.current_time() - start == 5.0  # not the 75 s keep-alive
    silent = await connect(fleet.url)  # a connection that sends nothing at all gets no longer
    start = trio.current_time()
    assert await closed(silent)
    assert trio.current_time() - start == 5.0
    kept = await connect(fleet.url)
    for _ in range(2):
        await kept.send_all(HEAD + b"\r\n")
        got = b""
        while not got.endswith(b"}"):  # the head, then the JSON body
            got += await kept.receive_some(65536)
        assert got.startswith(b"HTTP/1.1 200")
        await trio.sleep(30)  # a keep-alive pause far longer than the header timeout
    await kept.send_all(HEAD)  # the next head trickles: cut 5 s after its first byte
    start = trio.current_time()
    assert await closed(kept)
    assert trio.current_time() - start == 5.0


async def test_the_budget_evicts_waiting_connections_for_new_ones(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fleet = await start_fleet(nursery, tmp_path, max_connections=8, header_timeout=60.0)
    guard = fleet.router.web.connections
    assert guard.limit == 8
    slow = []
    for _ in range(20):
        s = await connect(fleet.url)
        await s.send_all(HEAD)
        slow.append(s)
    await trio.sleep(0.1)
    assert len(guard.open) <= 8 and guard.evicted >= 12
    resp = await fleet.http.get(fleet.url + "/api/version")  # a normal client, served at once
    assert resp.status_code == 200
    for s in slow[:10]:
        assert await closed(s)  # the oldest slow ones made room
    for s in slow:
        await s.aclose()


CHAT = b'{"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}], "stream": false}'
POST = b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(CHAT)


async def test_one_timer_per_connection_follows_its_state(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The connection's one timer: no deadline while a request runs (a reply slower than both timeouts is not
    cut), the 75 s keep-alive between requests, and a client that leaves mid-request ends its connection."""
    slow_node = FakeOllama([FakeModel("llama3.2:3b")], loaded=["llama3.2:3b"], chunk_delay=20.0, num_chunks=5)
    fleet = await start_fleet(nursery, tmp_path, {"n1": slow_node}, header_timeout=5.0)
    guard = fleet.router.web.connections
    conn = await connect(fleet.url)
    start = trio.current_time()
    await conn.send_all(POST + CHAT)  # answered after 5 x 20 s: past the header and the keep-alive timeouts
    got = b""
    while b'"done":true' not in got:
        got += await conn.receive_some(65536)
    assert got.startswith(b"HTTP/1.1 200") and trio.current_time() - start >= 100.0
    start = trio.current_time()
    assert await closed(conn)  # then idle: closed after the keep-alive timeout
    assert trio.current_time() - start == 75.0
    with trio.fail_after(1e6):  # hang guard only (virtual time)
        while guard.open:  # noqa: ASYNC110 (the server's connection tasks end on their own)
            await trio.sleep(1)
    await fleet.beat("n1")  # virtual minutes passed: the node reports again
    others = len(guard.open)  # the test's own HTTP client keeps its connection
    leaver = await connect(fleet.url)
    await leaver.send_all(POST + CHAT)
    with trio.fail_after(1e6):  # hang guard only: the request reaches the node (virtual time)
        while not fleet.router.slots.total():  # noqa: ASYNC110 (the request is the server's task)
            await trio.sleep(0.1)
    await trio.sleep(30)  # mid-request
    assert len(guard.open) == others + 1 and fleet.router.slots.total() == 1
    await leaver.aclose()
    with trio.fail_after(60):  # well before any timeout: the request is cancelled, the connection ends
        while len(guard.open) > others or fleet.router.slots.total():  # noqa: ASYNC110 (server tasks end alone)
            await trio.sleep(0.1)
    assert slow_node.cancelled_streams == 1


CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[1])))
from herd.cli import main
sys.exit(main(sys.argv[2:]))
"""


async def test_a_slowloris_burst_does_not_lock_out_a_normal_client(tmp_path: Path) -> None:
    """`herd run` with 128 descriptors against 300 connections trickling their heads: a normal client is
    still served (without the budget it waits for them in the accept backlog for the keep-alive timeout)."""
    port = await free_port()
    argv = [sys.executable, "-c", CHILD, "128", "--log-level", "error", "run", "--port", str(port)]
    argv += ["--host", "127.0.0.1", "--no-mdns", "--no-local-node", "--data-dir", str(tmp_path)]
    argv += ["--header-timeout", "60"]  # only the budget can help here
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(partial(trio.run_process, argv, env=env, check=False))
        try:
            url = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
                with trio.fail_after(20):
                    while True:
                        try:
                            if (await http.get(url + "/api/version")).status_code == 200:
                                break
                        except httpx.HTTPError:
                            await trio.sleep(0.1)
                slow = []
                with trio.move_on_after(10):
                    for _ in range(300):
                        s = await connect(url)
                        await s.send_all(HEAD)
                        slow.append(s)
                with trio.fail_after(10):  # 60 s without the budget
                    resp = await http.get(url + "/api/version")
                assert resp.status_code == 200
                for s in slow:
                    await s.aclose()
        finally:
            proc.send_signal(subprocess.signal.SIGKILL)  # type: ignore[attr-defined]


def test_the_router_raises_its_open_files_limit() -> None:
    script = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
        "from herd.web.connections import raise_open_files_limit\n"
        "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0], min(hard, 2**20))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, text=True)
    now, soft, hard = (int(x) for x in done.stdout.split())
    assert now == soft > 64 and (soft == hard or hard == 2**20)

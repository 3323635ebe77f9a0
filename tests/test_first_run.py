"""A first run that explains itself: the ready block of `herd run`, the join line of `herd node`, the quiet
local-Ollama notice, and Ctrl-C in `tasks.py` exiting with the child's status."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import trio
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet
from test_node_agent import RecordingSink, agent, fixed_host, free_port

from herd.banner import add_node_command, joined_line, reachable_urls, ready_block
from herd.config import RouterConfig, Secret, TrustConfig
from herd.node.local import LocalNode
from herd.nursery.announce import Announcer
from herd.nursery.router import Router

ROOT = Path(__file__).resolve().parent.parent


def test_reachable_urls_replace_the_wildcard_with_lan_addresses() -> None:
    bound = ["http://0.0.0.0:11435"]
    assert reachable_urls(bound, "0.0.0.0", ["192.168.1.5", "10.0.0.2", "127.0.0.1"]) == [
        "http://192.168.1.5:11435",
        "http://10.0.0.2:11435",
        "http://127.0.0.1:11435",
    ]
    assert reachable_urls(["http://10.0.0.9:80"], "10.0.0.9", ["192.168.1.5"]) == ["http://10.0.0.9:80"]


def test_ready_block_says_everything_once() -> None:
    urls = ["http://192.168.1.5:11435", "http://127.0.0.1:11435"]
    block = ready_block(urls, mdns=False, nodes=["gpu-1"], version="9.9")
    assert "0.0.0.0" not in block and "http://192.168.1.5:11435/dashboard" in block
    assert "mDNS        off" in block and "nodes       1 (gpu-1)" in block
    assert add_node_command(urls[0]) == "herd node --router-url http://192.168.1.5:11435"
    assert block.count(add_node_command(urls[0])) == 1 and block.splitlines()[0] == "herd 9.9 router is ready"
    assert "on:" in ready_block(urls, mdns=True, nodes=[], version="9.9")
    # with a fleet token the line says where the token is, never the token; with TLS, which CA to trust
    line = add_node_command("https://10.0.0.2:11435", token_file="/root/.herd/fleet-token", tls=True)
    assert line == (
        "herd node --router-url https://10.0.0.2:11435 --fleet-token <the token in /root/.herd/fleet-token>"
        " --ca-file <the router's certificate, if self-signed>"
    )
    assert "<the fleet token>" in add_node_command("http://h:1", token_file="")
    assert reachable_urls(["https://0.0.0.0:8443"], "0.0.0.0", ["10.0.0.2"])[0] == "https://10.0.0.2:8443"


async def test_router_prints_the_ready_block(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)  # one node seen
    printed: list[str] = []
    cfg = RouterConfig(data_dir=tmp_path / "r2", host="0.0.0.0", port=0, local_node=False, mdns=False)
    announcer = Announcer(
        cfg, fleet.router.services, ["http://0.0.0.0:4242"], printed.append, lan=lambda: ["10.9.8.7"]
    )
    await nursery.start(announcer.run)
    assert len(printed) == 1
    assert "http://10.9.8.7:4242/dashboard" in printed[0] and "nodes       1 (n1)" in printed[0]
    assert "herd node --router-url http://10.9.8.7:4242" in printed[0]
    # and `herd run` wires it in: the block appears once the real router serves
    router = Router(
        RouterConfig(data_dir=tmp_path / "r3", host="127.0.0.1", port=0, local_node=False, mdns=False),
        duties=[lambda svc, urls: Announcer(svc.cfg, svc, urls, printed.append)],
    )
    urls = await nursery.start(router.run)
    assert len(printed) == 2 and f"API         {urls[0]}" in printed[1]
    # a fleet with a token: the block says where the token is and never shows it
    token = "s3cret-token-0123456789"
    (tmp_path / "r2").mkdir(exist_ok=True)
    (tmp_path / "r2" / "fleet-token").write_text(token)
    secured = replace(cfg, trust=TrustConfig(fleet_token=Secret(token)))
    await nursery.start(
        Announcer(secured, fleet.router.services, ["http://0.0.0.0:4242"], printed.append).run
    )
    assert f"--fleet-token <the token in {tmp_path / 'r2' / 'fleet-token'}>" in printed[2]
    assert token not in printed[2]


async def test_node_prints_the_router_it_joined_and_its_models(nursery: trio.Nursery, tmp_path: Path) -> None:
    fake = FakeOllama([FakeModel("llama3.2:3b"), FakeModel("qwen3:8b")])
    await nursery.start(fake.run)
    lines: list[str] = []
    sink = RecordingSink()
    async with httpx.AsyncClient(trust_env=False) as client:
        a = agent(
            client,
            fake.url,
            sink,
            tmp_path,
            on_report=lambda r, hb: lines.append(joined_line("n1", r, [m["name"] for m in hb.models])),
        )
        assert await a._deliver(None) and await a._deliver(None)
        assert lines == [
            "herd node n1: joined the router at test sink, reporting 2 model(s): llama3.2:3b, qwen3:8b"
        ]
        del fake.models["qwen3:8b"]
        assert await a._deliver(None)
    assert len(lines) == 2 and lines[1].endswith("reporting 1 model(s): llama3.2:3b")


async def test_missing_local_ollama_is_one_info_line(
    nursery: trio.Nursery,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    port = await free_port()
    fleet = await start_fleet(nursery, tmp_path, nodes={}, local_ollama_url=f"http://127.0.0.1:{port}")
    caplog.set_level(logging.INFO, logger="herd.node")
    local = LocalNode(fleet.router.cfg, fleet.router.registry.ingest, host_probe=fixed_host)
    await nursery.start(local.run)
    await trio.sleep(20)
    notes = [r for r in caplog.records if "Ollama" in r.getMessage() or "backend" in r.getMessage()]
    assert [r.levelno for r in notes] == [logging.INFO] and "optional" in notes[0].getMessage()


def test_ctrl_c_in_tasks_exits_quietly_with_the_childs_status() -> None:
    child = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *_: sys.exit(3))\n"
        "print('child' + '-up', flush=True)\n"
        "time.sleep(30)\n"
    )
    code = (
        "import sys, tasks\n"
        f"tasks.TASKS['_child'] = lambda _: tasks._run(sys.executable, '-c', {child!r}, check=False)\n"
        "sys.exit(tasks.main(['_child']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    while "child-up" not in (line := proc.stdout.readline()):
        assert line, "the child never started"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group gets it
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3 and "Traceback" not in err

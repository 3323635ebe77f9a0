"""Zero-config across hosts, for real: `herd run` in one network namespace, a fake Ollama and `herd node`
(no --router-url) in another. The agent must find the router over mDNS, report the backend at the address the
router can reach, and the router must then serve a chat from that node across the bridge.

Needs root and iproute2; skipped with the reason otherwise, except under CI=true, where it must run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import trio
from netns import Host, hosts, unavailable

WHY = unavailable()
if WHY and os.environ.get("CI") == "true":
    raise RuntimeError(f"the mDNS-across-namespaces test must run under CI, but: {WHY}")
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"real mDNS across network namespaces: {WHY}")

ROOT = Path(__file__).resolve().parent.parent
HERD = [sys.executable, "-m", "herd", "--log-level", "info"]
FAKE = textwrap.dedent(
    """
    import sys, trio
    sys.path.insert(0, {tests!r})
    from fake_ollama import FakeOllama
    fake = FakeOllama(["llama3.2:3b"], loaded=["llama3.2:3b"])
    fake.bind = "0.0.0.0:{port}"
    trio.run(fake.run)
    """
)


@contextmanager
def spawn(host: Host, argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(host.cmd(*argv), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fetch(host: Host, url: str, body: dict | None = None) -> dict:
    code = (
        "import json, sys, urllib.request as u\n"
        "req = u.Request(sys.argv[1], data=sys.argv[2].encode() or None, method='POST' if sys.argv[2] else 'GET')\n"
        "print(u.urlopen(req, timeout=5).read().decode())\n"
    )
    out = subprocess.run(
        host.cmd(sys.executable, "-c", code, url, json.dumps(body) if body else ""),
        capture_output=True,
        text=True,
        timeout=20,
    )
    if out.returncode != 0:
        raise ConnectionError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    return json.loads(out.stdout)


async def test_node_finds_router_over_mdns_across_hosts(tmp_path: Path) -> None:
    router_port, ollama_port = 11435, 11434
    with hosts(2) as (a, b):
        router_cmd = [
            *HERD,
            "run",
            "--host",
            "0.0.0.0",
            "--port",
            str(router_port),
            "--no-local-node",
            "--mdns-interface",
            a.ip,
            "--data-dir",
            str(tmp_path / "router"),
        ]
        fake_cmd = [sys.executable, "-c", FAKE.format(tests=str(ROOT / "tests"), port=ollama_port)]
        node_cmd = [
            *HERD,
            "node",
            "--ollama-url",
            f"http://127.0.0.1:{ollama_port}",
            "--node-id",
            "host-b",
            "--mdns-interface",
            b.ip,
            "--data-dir",
            str(tmp_path / "node"),
        ]
        with (
            spawn(a, router_cmd, tmp_path / "router.log"),
            spawn(b, fake_cmd, tmp_path / "fake.log"),
            spawn(b, node_cmd, tmp_path / "node.log") as node,
        ):
            status: dict = {}
            with trio.move_on_after(40):  # hang guard: discovery normally takes about a second
                while not any(n["node_id"] == "host-b" and n["routable"] for n in status.get("nodes", [])):
                    await trio.sleep(0.5)
                    try:
                        status = await trio.to_thread.run_sync(
                            fetch, b, f"http://{a.ip}:{router_port}/fleet/status"
                        )
                    except (ConnectionError, json.JSONDecodeError, subprocess.TimeoutExpired):
                        continue
            logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in tmp_path.glob("*.log"))  # noqa: ASYNC240
            nodes = {n["node_id"]: n for n in status.get("nodes", [])}
            assert "host-b" in nodes, logs
            # the agent reported its loopback Ollama at the address the router can reach
            assert nodes["host-b"]["backend_url"] == f"http://{b.ip}:{ollama_port}", logs
            reply = await trio.to_thread.run_sync(
                fetch,
                b,
                f"http://{a.ip}:{router_port}/api/chat",
                {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}], "stream": False},
            )
            assert reply["done"] and reply["message"]["content"], logs
            node.terminate()  # SIGTERM: the agent says it is draining before it exits
            await trio.to_thread.run_sync(node.wait, 10)
            status = await trio.to_thread.run_sync(fetch, b, f"http://{a.ip}:{router_port}/fleet/status")
            assert {n["node_id"]: n["draining"] for n in status["nodes"]}["host-b"] is True


async def wait_status(host: Host, url: str, ready: Callable[[dict], bool]) -> dict:
    """/fleet/status fetched from `host` until `ready` says yes (hang guard: 40 s)."""
    status: dict = {}
    with trio.move_on_after(40):
        while not ready(status):
            await trio.sleep(0.5)
            try:
                status = await trio.to_thread.run_sync(fetch, host, url + "/fleet/status")
            except (ConnectionError, json.JSONDecodeError, subprocess.TimeoutExpired):
                continue
    return status


async def test_two_fleets_on_one_lan_never_mix(tmp_path: Path) -> None:
    """An open router (no token) is already on the LAN when an agent holding another fleet's token starts
    browsing over mDNS: the agent skips it (fleet id in the TXT record) and joins its own fleet's router, which
    then serves a chat through it; the open router never gets the node."""
    port, ollama_port = 11435, 11434
    token = "fleet-two-token-9876543210"
    with hosts(3) as (a, b, c), ExitStack() as stack:

        def router(host: Host, name: str, *extra: str) -> list[str]:
            return [*HERD, "run", "--port", str(port), "--no-local-node", "--mdns-interface", host.ip,
                    "--data-dir", str(tmp_path / name), *extra]  # fmt: skip

        one, two = f"http://{a.ip}:{port}", f"http://{c.ip}:{port}"
        stack.enter_context(spawn(a, router(a, "one"), tmp_path / "router-one.log"))
        assert "nodes" in await wait_status(b, one, lambda s: "nodes" in s)
        fake_cmd = [sys.executable, "-c", FAKE.format(tests=str(ROOT / "tests"), port=ollama_port)]
        stack.enter_context(spawn(b, fake_cmd, tmp_path / "fake.log"))
        node_cmd = [*HERD, "node", "--ollama-url", f"http://127.0.0.1:{ollama_port}", "--node-id", "host-b",
                    "--mdns-interface", b.ip, "--fleet-token", token, "--data-dir", str(tmp_path / "node")]  # fmt: skip
        stack.enter_context(spawn(b, node_cmd, tmp_path / "node.log"))
        stack.enter_context(spawn(c, router(c, "two", "--fleet-token", token), tmp_path / "router-two.log"))
        joined = await wait_status(b, two, lambda s: any(n["routable"] for n in s.get("nodes", [])))
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in tmp_path.glob("*.log"))  # noqa: ASYNC240
        assert [n["node_id"] for n in joined.get("nodes", [])] == ["host-b"], logs
        assert (await trio.to_thread.run_sync(fetch, b, one + "/fleet/status"))["nodes"] == [], logs
        reply = await trio.to_thread.run_sync(
            fetch,
            b,
            two + "/api/chat",
            {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}], "stream": False},
        )
        assert reply["done"] and reply["message"]["content"], logs

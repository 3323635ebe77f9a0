"""Slowloris against `herd run` (part of `bench/resilience.py`, issue 11): the router limited to 1,024 open files,
slow clients that send a request head one header line every 2 s and reconnect whenever they are dropped, and a
normal client opening a fresh connection for each of 20 `GET /api/version` meanwhile.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
HERD = [sys.executable, "-m", "herd"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _limit_files() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def _start_limited(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`cmd` with the common 1,024 open-files limit (soft and hard: `herd run` cannot raise it)."""
    out = log.open("ab")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=out, env=env, preexec_fn=_limit_files)


async def slowloris_run(tmp: Path, guarded: bool, conns: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [*HERD, "--log-level", "error", "run", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--no-local-node", "--no-mdns", "--data-dir", str(tmp)]
    if not guarded:
        cmd += ["--max-connections", "100000", "--header-timeout", "75"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    proc = _start_limited(cmd, tmp / "router.log", env)
    opened = 0
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    try:
        # a new connection per request, as a new client would open: the accept path is what slowloris fills
        fresh = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(trust_env=False, timeout=10, limits=fresh) as http:
            with trio.fail_after(30):
                while True:
                    try:
                        await http.get(url + "/api/version")
                        break
                    except httpx.HTTPError:
                        await trio.sleep(0.1)

            async def trickle(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                """One slow client as slowloris tools run it: reconnect whenever the server drops it."""
                nonlocal opened
                first = True
                while True:
                    stream: trio.SocketStream | None = None
                    with trio.move_on_after(1):
                        stream = await trio.open_tcp_stream("127.0.0.1", port)
                    if first:
                        task_status.started()
                        first = False
                    if stream is None:
                        continue
                    opened += 1
                    try:
                        await stream.send_all(b"GET /api/version HTTP/1.1\r\nHost: herd\r\n")
                        for i in range(10**6):
                            await trio.sleep(2)
                            await stream.send_all(b"X-Slow-%d: x\r\n" % i)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        pass
                    finally:
                        await trio.aclose_forcefully(stream)

            async with trio.open_nursery() as attack:
                for _ in range(conns):
                    await attack.start(trickle)
                await trio.sleep(5)
                for _ in range(20):
                    t = trio.current_time()
                    try:
                        resp = await http.get(url + "/api/version")
                        if resp.status_code == 200:
                            latencies.append(trio.current_time() - t)
                        else:
                            failures[str(resp.status_code)] += 1
                    except httpx.HTTPError as exc:
                        failures[type(exc).__name__] += 1
                    await trio.sleep(0.25)
                attack.cancel_scope.cancel()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    latencies.sort()
    return {
        "guarded": guarded,
        "slow_connections_opened_incl_reconnects": opened,
        "normal_requests_ok": len(latencies),
        "normal_failures": dict(failures),
        "latency_p50_ms": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
        "latency_max_ms": round(1000 * latencies[-1], 1) if latencies else None,
    }

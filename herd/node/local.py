"""The router's own node agent (`herd run` without `--no-local-node`): the same heartbeat loop as `herd node`,
delivering straight into the router's registry instead of over HTTP. It joins the fleet only once the local
Ollama has answered, so a router on a machine without Ollama shows no phantom node."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import trio

from herd.config import RouterConfig
from herd.fleet.heartbeat import Heartbeat
from herd.node.agent import Agent


class LocalSink:
    def __init__(self, ingest: Callable[[Heartbeat], None]) -> None:
        self.ingest = ingest

    def describe(self) -> str:
        return "this router"

    async def send(self, hb: Heartbeat) -> None:
        self.ingest(hb)


class LocalNode:
    """Service: runs the agent for the Ollama beside the router."""

    def __init__(self, cfg: RouterConfig, ingest: Callable[[Heartbeat], None]) -> None:
        self.cfg = cfg
        self.ingest = ingest
        self.agent: Agent | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        timeout = httpx.Timeout(3.0)
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            self.agent = Agent(
                node_id=self.cfg.local_node_id,
                backend_url=self.cfg.local_ollama_url,
                data_dir=self.cfg.data_dir,
                client=client,
                sink=LocalSink(self.ingest),
                interval=self.cfg.fleet.heartbeat_interval,
                require_backend=True,
            )
            await self.agent.run(task_status=task_status)

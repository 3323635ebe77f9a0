"""The router's own node agent (`herd run` without `--no-local-node`): the same heartbeat loop as `herd node`,
delivering straight into the router's registry instead of over HTTP. It joins the fleet only once the local
Ollama has answered, so a router on a machine without Ollama shows no phantom node."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio

from herd.config import MediaConfig, RouterConfig
from herd.fleet.guest import GuestState
from herd.fleet.heartbeat import Heartbeat, HostStats
from herd.node.agent import Agent
from herd.node.collect import host_stats
from herd.node.guest import GuestReporter
from herd.node.media import MediaScout


class LocalSink:
    def __init__(self, ingest: Callable[[Heartbeat], None]) -> None:
        self.ingest = ingest

    async def answers(self) -> bool:
        return True

    def describe(self) -> str:
        return "this router"

    async def ready(self) -> None:
        return None

    async def send(self, hb: Heartbeat) -> None:
        self.ingest(hb)


class LocalNode:
    """Service: runs the agent for the Ollama beside the router."""

    def __init__(
        self,
        cfg: RouterConfig,
        ingest: Callable[[Heartbeat], None],
        host_probe: Callable[[Path], Awaitable[HostStats]] = host_stats,
        guest_sample: Callable[[HostStats], Awaitable[GuestState]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.ingest = ingest
        self.host_probe = host_probe
        self.guest_sample = guest_sample  # the good-guest probes (herd.node.probes); None: not reported
        self.agent: Agent | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        timeout = httpx.Timeout(3.0)
        guest = None
        if self.guest_sample is not None:
            guest = GuestReporter(sample=self.guest_sample, data_dir=self.cfg.data_dir)
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            self.agent = Agent(
                node_id=self.cfg.local_node_id,
                backend_url=self.cfg.local_ollama_url,
                data_dir=self.cfg.data_dir,
                client=client,
                sink=LocalSink(self.ingest),
                interval=self.cfg.fleet.heartbeat_interval,
                require_backend=True,
                host_probe=self.host_probe,
                # Ollama image-generation models beside the router are offered like any node's
                media=MediaScout(MediaConfig(), client, advertise=lambda url: url, service_url=lambda: None),
                guest=guest,
            )
            try:
                await self.agent.run(task_status=task_status)
            finally:
                if guest is not None:
                    with trio.CancelScope(shield=True):  # keep what was learned across restarts
                        await guest.save()

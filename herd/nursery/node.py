"""Composition root for `herd node`: one HTTP client, a router locator (fixed URL or mDNS browse), the heartbeat
agent, all in one nursery. SIGTERM/SIGINT cancels the loop, then one last `draining` heartbeat goes out within a
short deadline so the router stops sending work here before the process exits.

An exclusive lock on `<data_dir>/agent.lock` keeps two agents from sharing one data dir; several agents run on
one machine with distinct `--node-id` and `--data-dir`.

With `--lan-proxy` the LAN proxy (`herd.node.lanproxy`) starts before the agent, which then advertises the
proxy's address as its backend URL and flags its heartbeats `signed`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import trio

from herd.banner import joined_line
from herd.config import NodeConfig
from herd.fleet.discovery import browse_router, default_interfaces
from herd.fleet.guest import GuestState
from herd.node.agent import Agent, HttpSink, advertised_url
from herd.node.collect import host_stats
from herd.node.commands import CommandServer
from herd.node.guest import GuestReporter
from herd.node.lanproxy import LanProxy
from herd.node.media import MediaScout
from herd.node.probes.sample import GuestProbe

log = logging.getLogger("herd.node")


class DataDirBusy(Exception):
    pass


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "agent.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DataDirBusy(
                f"another herd node agent is using {data_dir}; give each agent its own --data-dir"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def build_agent(
    cfg: NodeConfig,
    client: httpx.AsyncClient,
    commands: CommandServer | None = None,
    lan_proxy: LanProxy | None = None,
) -> Agent:
    interfaces = list(cfg.mdns_interfaces) or default_interfaces()

    async def locate() -> str | None:
        if cfg.router_url:
            return cfg.router_url
        with trio.move_on_after(10):
            return await browse_router(interfaces, cfg.trust.fleet_id)
        return None

    sink = HttpSink(client, locate, fleet_token=cfg.trust.token)

    def backend_url() -> str:
        """The backend as the router should reach it: the LAN proxy (once it listens) in its place."""
        return lan_proxy.url if lan_proxy is not None and lan_proxy.url else cfg.ollama_url

    # With nothing configured a scan costs no I/O (it only looks for Ollama image models in the probe).
    media = MediaScout(
        cfg.media,
        client,
        advertise=lambda url: advertised_url(url, sink.router_url, None),
        service_url=lambda: commands.url if commands is not None else None,
    )
    probe = GuestProbe(busy_apps=cfg.busy_apps, meeting_pause=cfg.meeting_pause, timeout=cfg.probe_timeout)
    guest = GuestReporter(sample=probe.sample, data_dir=cfg.data_dir, learning=cfg.capacity_learning)
    return Agent(
        node_id=cfg.node_id,
        backend_url=cfg.ollama_url,
        data_dir=cfg.data_dir,
        client=client,
        sink=sink,
        interval=cfg.heartbeat_interval,
        backoff_max=cfg.backoff_max,
        probe_timeout=cfg.probe_timeout,
        advertise=lambda: advertised_url(backend_url(), sink.router_url, cfg.advertise_url),
        parallel=cfg.parallel,
        backend=cfg.backend,
        media=media,
        guest=guest,
        on_report=lambda router, hb: print(
            joined_line(cfg.node_id, router, [str(m.get("name")) for m in hb.models]), flush=True
        ),
        signed=lan_proxy is not None,
    )


async def print_probes(cfg: NodeConfig) -> int:
    """`herd node --print-probes`: one sample of what this machine reports, as JSON (null = unknown)."""
    probe = GuestProbe(busy_apps=cfg.busy_apps, meeting_pause=cfg.meeting_pause, timeout=cfg.probe_timeout)
    host = await host_stats(cfg.data_dir if cfg.data_dir.exists() else Path.home())
    await trio.sleep(0.5)  # a second pass gives per-process CPU over this half second
    await probe.sample(host)
    print(json.dumps(probe_report(await probe.sample(host)), indent=2))
    return 0


def probe_report(state: GuestState) -> dict[str, object]:
    out = state.to_json()
    del out["capacity"], out["capacity_now"]
    return out


async def run_node(cfg: NodeConfig) -> None:
    try:
        with data_dir_lock(cfg.data_dir):
            await _run(cfg)
    except DataDirBusy as exc:
        log.error("%s", exc)
        raise SystemExit(2) from exc


def agent_client(cfg: NodeConfig) -> httpx.AsyncClient:
    """The agent's one HTTP client; an https:// router with a self-signed certificate is trusted through
    --ca-file (reads the file: call it at startup)."""
    timeout = httpx.Timeout(cfg.probe_timeout, connect=cfg.probe_timeout)
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=4)
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=cfg.trust.ca_file) if cfg.trust.ca_file else True
    )
    return httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False, verify=verify)


def lan_proxy_for(cfg: NodeConfig) -> LanProxy | None:
    """The LAN proxy when the config asks for it (`herd.cli_node` made sure a fleet token is set)."""
    if not cfg.lan_proxy or cfg.trust.token is None:
        return None
    return LanProxy(
        cfg.ollama_url,
        cfg.trust.token,
        node_id=cfg.node_id,
        host=cfg.lan_proxy_host,
        port=cfg.lan_proxy_port,
    )


async def _run(cfg: NodeConfig) -> None:
    async with agent_client(cfg) as client:
        commands = CommandServer(cfg.media, cfg.trust.token) if cfg.media.needs_service else None
        lan_proxy = lan_proxy_for(cfg)
        agent = build_agent(cfg, client, commands, lan_proxy)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                if commands is not None:
                    await nursery.start(commands.run)
                if lan_proxy is not None:
                    await nursery.start(lan_proxy.run)
                await nursery.start(agent.run)
                log.info("herd node %s serving %s", cfg.node_id, cfg.ollama_url)
                async for sig in signals:
                    log.info("signal %s: draining", signal.Signals(sig).name)
                    nursery.cancel_scope.cancel()
                    break
        await agent.drain()
        if agent.guest is not None:
            await agent.guest.save()

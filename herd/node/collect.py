"""What a node agent reports: host stats (psutil, in a worker thread) and the backend's state (Ollama's
`/api/version`, `/api/tags`, `/api/ps`, probed concurrently under one deadline), folded into a `Heartbeat` by the
pure `build_heartbeat`. `herd.node.agent` calls these once per heartbeat interval."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import trio

from herd import __version__
from herd.fleet.guest import NO_GUEST, GuestState
from herd.fleet.heartbeat import OLLAMA, Heartbeat, HostStats


def _host_stats_sync(data_dir: Path) -> HostStats:
    mem = psutil.virtual_memory()
    try:
        disk_free = psutil.disk_usage(str(data_dir)).free
    except OSError:
        disk_free = 0
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return HostStats(
        cpu_percent=float(psutil.cpu_percent(interval=None)),  # since the previous call: non-blocking
        cpu_count=psutil.cpu_count() or 0,
        mem_total=int(mem.total),
        mem_available=int(mem.available),
        disk_free=int(disk_free),
        load=(float(load[0]), float(load[1]), float(load[2])),
    )


async def host_stats(data_dir: Path) -> HostStats:
    return await trio.to_thread.run_sync(_host_stats_sync, data_dir)


@dataclass(frozen=True, slots=True)
class BackendProbe:
    up: bool
    version: str | None = None
    models: tuple[dict[str, Any], ...] = ()
    loaded: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def probe_ollama(client: httpx.AsyncClient, url: str) -> BackendProbe:
    """Ask Ollama for its version, models on disk and loaded models, all at once (the caller bounds the time)."""
    results: dict[str, Any] = {}
    errors: list[str] = []

    async def fetch(path: str) -> None:
        try:
            resp = await client.get(url + path)
            resp.raise_for_status()
            results[path] = resp.json()
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            errors.append(f"{path}: {type(exc).__name__}: {exc}")

    async with trio.open_nursery() as nursery:
        for path in ("/api/version", "/api/tags", "/api/ps"):
            nursery.start_soon(fetch, path)
    if errors or len(results) < 3:
        return BackendProbe(up=False, error="; ".join(errors) or "incomplete answer")
    tags = results["/api/tags"].get("models") or []
    ps = results["/api/ps"].get("models") or []
    return BackendProbe(
        up=True,
        version=results["/api/version"].get("version"),
        models=tuple(
            m for m in tags if isinstance(m, dict) and isinstance(m.get("name") or m.get("model"), str)
        ),
        loaded=tuple(
            m for m in ps if isinstance(m, dict) and isinstance(m.get("name") or m.get("model"), str)
        ),
    )


def build_heartbeat(
    *,
    node_id: str,
    backend_url: str,
    probe: BackendProbe,
    host: HostStats,
    interval: float,
    draining: bool = False,
    parallel: int = 0,
    backend: str = OLLAMA,
    media: tuple[dict[str, Any], ...] = (),
    guest: GuestState = NO_GUEST,
) -> Heartbeat:
    return Heartbeat(
        node_id=node_id,
        agent_version=__version__,
        backend=backend,
        backend_url=backend_url,
        backend_up=probe.up,
        backend_version=probe.version,
        draining=draining,
        interval=interval,
        host=host,
        models=probe.models if probe.up else (),
        loaded=probe.loaded if probe.up else (),
        parallel=parallel,
        media=media,
        guest=guest,
    )

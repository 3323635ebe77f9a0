"""Warm restart: the router remembers the last known fleet in its data dir, so that after a restart (a crash,
a SIGKILL, an upgrade) a request for a model the fleet served is told "fleet starting, retry" (503 with
`Retry-After`), or simply waits for its node, instead of getting 404 until the agents report again.

File `<data_dir>/fleet.json`, written atomically (temp file + rename, in a worker thread) at most once a second
and only when the set of nodes, their addresses or their models changed:

    {"version": 1, "nodes": {"<node_id>": {"url": "http://10.0.0.5:11434", "models": ["llama3.2:3b", ...]}}}

Offline nodes are left out. At start the file is read once; until every remembered node that had a model has
reported again, or the grace period (2 x `offline_after`) is over, that model is "starting" for
`herd.routing.proxy`. A missing or unreadable file is an empty memory (a cold start), never an error.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import trio

from herd.fleet.registry import Registry
from herd.fleet.state import FleetSnapshot, NodeStatus

log = logging.getLogger("herd.fleet")

Known = Mapping[str, tuple[str, frozenset[str]]]  # node_id -> (backend url, models and media models)


@dataclass(frozen=True, slots=True)
class Remembered:
    nodes: Known = field(default_factory=dict)


def known(snap: FleetSnapshot) -> Known:
    """The part of a snapshot worth remembering: every node not offline, its address and models."""
    return {
        node_id: (node.url, frozenset(node.models) | {m["model"] for m in node.heartbeat.media})
        for node_id, node in snap.nodes.items()
        if node.status is not NodeStatus.OFFLINE
    }


def merged(current: Known, memory: Remembered, snap: FleetSnapshot, starting: bool) -> Known:
    """What to write: the live fleet, plus (while starting) remembered nodes that have not reported yet, so a
    second restart during the first one forgets nothing."""
    if not starting:
        return current
    return {**{k: v for k, v in memory.nodes.items() if k not in snap.nodes}, **current}


def encode(nodes: Known) -> bytes:
    body = {n: {"url": url, "models": sorted(models)} for n, (url, models) in sorted(nodes.items())}
    return json.dumps({"version": 1, "nodes": body}, indent=1).encode()


def decode(data: bytes) -> Remembered:
    """The file's content; anything malformed is skipped (a damaged file means a cold start, not a crash)."""
    try:
        obj = json.loads(data)
    except ValueError:
        return Remembered()
    nodes = obj.get("nodes") if isinstance(obj, dict) else None
    if not isinstance(nodes, dict):
        return Remembered()
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for node_id, entry in nodes.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("models"), list):
            continue
        models = frozenset(m for m in entry["models"] if isinstance(m, str) and m)
        out[str(node_id)] = (str(entry.get("url", "")), models)
    return Remembered(out)


def waiting_for(memory: Remembered, snap: FleetSnapshot, model: str) -> list[str]:
    """Remembered nodes that had `model` and have not reported since the restart."""
    return [n for n, (_, models) in memory.nodes.items() if model in models and n not in snap.nodes]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class FleetMemory:
    """Service: loads the remembered fleet before it reports started, then keeps the file up to date."""

    def __init__(self, path: Path, registry: Registry, grace: float, interval: float = 1.0) -> None:
        self.path = path
        self.registry = registry
        self.grace = grace
        self.interval = interval
        self.memory = Remembered()
        self.started_at: float | None = None

    def starting(self, model: str) -> bool:
        """Whether requests for `model` should wait or hear "fleet starting" rather than "not found"."""
        if self.started_at is None or trio.current_time() - self.started_at >= self.grace:
            return False
        snap = self.registry.snapshot
        return not snap.knows_model(model) and bool(waiting_for(self.memory, snap, model))

    def _still_starting(self) -> bool:
        return self.started_at is not None and trio.current_time() - self.started_at < self.grace

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.started_at is None:  # once per router: a supervised restart must not restart the grace
            self.memory = decode(await trio.to_thread.run_sync(_read, self.path))
            self.started_at = trio.current_time()
            if self.memory.nodes:
                log.info(
                    "remembered %d nodes from the last run; waiting for them to report",
                    len(self.memory.nodes),
                )
        task_status.started()
        written = self.memory.nodes
        seen: FleetSnapshot | None = None
        while True:
            await trio.sleep(self.interval)
            snap = self.registry.snapshot
            if snap is seen:
                continue
            seen = snap
            nodes = merged(known(snap), self.memory, snap, self._still_starting())
            if nodes != written:
                await trio.to_thread.run_sync(_write, self.path, encode(nodes))
                written = nodes

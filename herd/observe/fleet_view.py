"""The fleet as JSON (pure over the live services): what `GET /fleet/status` returns and what the dashboard's
WebSocket pushes as fleet frames."""

from __future__ import annotations

from typing import Any

import trio

from herd import __version__
from herd.fleet.heartbeat import Heartbeat
from herd.fleet.state import NodeState
from herd.services import RouterServices


def _node_json(node: NodeState, now: float, in_flight: int, paused: bool) -> dict[str, Any]:
    hb = node.heartbeat
    return {
        "node_id": node.node_id,
        "status": node.status.value,
        "routable": node.routable,
        "backend": hb.backend,
        "backend_url": hb.backend_url,
        "signed": hb.signed,  # backend_url is the agent's LAN proxy: requests to it are signed
        "backend_up": hb.backend_up,
        "backend_version": hb.backend_version,
        "agent_version": hb.agent_version,
        "draining": hb.draining,
        "paused": paused,
        "last_seen_seconds_ago": round(now - node.last_seen, 3),
        "in_flight": in_flight,
        "parallel": hb.parallel,
        "media": [dict(m) for m in hb.media],
        "capabilities": {m: sorted(c) for m, c in sorted(node.capabilities.items())},
        "host": {
            "cpu_percent": hb.host.cpu_percent,
            "cpu_count": hb.host.cpu_count,
            "mem_total": hb.host.mem_total,
            "mem_available": hb.host.mem_available,
            "disk_free": hb.host.disk_free,
            "load": list(hb.host.load),
        },
        **guest_json(hb),
        "models": sorted(node.models),
        "hot": sorted(node.loaded),
        "loaded": [
            {k: m.get(k) for k in ("name", "size", "size_vram", "context_length", "expires_at")}
            for m in hb.loaded
        ],
    }


def guest_json(hb: Heartbeat) -> dict[str, Any]:
    """The node's good-guest report (herd.fleet.guest): `null` wherever the node could not tell."""
    g = hb.guest.to_json()
    return {
        "gpu": g["gpu"],
        "thermal": g["thermal"],
        "on_battery": g["on_battery"],
        "owner": g["owner"],
        "memory_ceiling": g["memory_ceiling"],
        "capacity": None if g["capacity"] is None else {"week": g["capacity"], "now": g["capacity_now"]},
    }


def fleet_status(svc: RouterServices) -> dict[str, Any]:
    snap, now = svc.registry.snapshot, trio.current_time()
    per_node: dict[str, int] = {}
    for (node_id, _), n in svc.slots.in_flight.items():
        per_node[node_id] = per_node.get(node_id, 0) + n
    nodes = [
        _node_json(n, now, per_node.get(n.node_id, 0), n.node_id in svc.registry.paused)
        for n in snap.nodes.values()
    ]
    for entry in nodes:
        entry["outlier"] = svc.proxy.outliers.view(entry["node_id"], now)
    nodes.sort(key=lambda n: n["node_id"])
    counts = {s: sum(1 for n in nodes if n["status"] == s) for s in ("online", "degraded", "offline")}
    return {
        "router_version": __version__,
        "nodes": nodes,
        "queue": svc.queue.depths(),
        "summary": {**counts, "in_flight": svc.slots.total(), "waiting": sum(svc.queue.depths().values())},
    }

"""The fleet as JSON (pure over the live services): what `GET /fleet/status` returns and what the dashboard's
WebSocket pushes as fleet frames: per node its models (hot/warm), in-flight per model and the request kinds each
model serves (text, embed, vision, image, speech); per model the queue depth and estimated wait."""

from __future__ import annotations

from typing import Any

import trio

from herd import __version__
from herd.fleet.heartbeat import Heartbeat
from herd.fleet.state import NodeState
from herd.services import RouterServices

KINDS_OF_CAPABILITY = {"completion": "text", "embedding": "embed", "vision": "vision"}
KINDS_OF_MEDIA = {"image": "image", "transcription": "speech"}


def model_kinds(model: str, caps: frozenset[str] | None) -> list[str]:
    """The request kinds a model serves, from its capabilities (unknown: a name with "embed" embeds, any
    other generates text). Embedding is listed for models that only embed: Ollama embeds with every model."""
    if caps is None:
        return ["embed"] if "embed" in model else ["text"]
    kinds = {KINDS_OF_CAPABILITY[c] for c in caps if c in KINDS_OF_CAPABILITY}
    if "text" in kinds:
        kinds.discard("embed")
    return sorted(kinds) or ["text"]


def request_kind(path: str) -> str:
    """What a request was, from its route: embed, image, speech or text."""
    if "embed" in path:
        return "embed"
    if "/images/" in path:
        return "image"
    if "/audio/" in path:
        return "speech"
    return "text"


def _node_json(
    node: NodeState, now: float, in_flight: int, paused: bool, per_model: dict[str, int] | None = None
) -> dict[str, Any]:
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
        "in_flight_models": dict(sorted((per_model or {}).items())),
        "kinds": {
            **{m: model_kinds(m, node.capabilities.get(m)) for m in sorted(node.models)},
            **{str(m["model"]): [KINDS_OF_MEDIA.get(str(m["kind"]), str(m["kind"]))] for m in hb.media},
        },
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
    per_model: dict[str, dict[str, int]] = {}
    for (node_id, model), n in svc.slots.in_flight.items():
        per_node[node_id] = per_node.get(node_id, 0) + n
        if n:
            per_model.setdefault(node_id, {})[model] = n
    nodes = [
        _node_json(
            n, now, per_node.get(n.node_id, 0), n.node_id in svc.registry.paused, per_model.get(n.node_id)
        )
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
        "queues": queue_rows(svc),
        "summary": {**counts, "in_flight": svc.slots.total(), "waiting": sum(svc.queue.depths().values())},
    }


def queue_rows(svc: RouterServices) -> list[dict[str, Any]]:
    """Per model waiting: depth, oldest wait, estimated wait (depth x mean duration / capacity), in flight and
    capacity over the routable nodes that have it (what `GET /fleet/queue` lists)."""
    snap = svc.registry.snapshot
    rows: list[dict[str, Any]] = []
    for q in svc.queue.stats():
        nodes = [n for n in snap.nodes.values() if n.routable and q.model in n.models]
        capacity = sum(svc.slots.capacity(n.node_id, q.model) for n in nodes)
        duration = svc.latency.model_duration(q.model)
        estimate = None if duration is None or not capacity else round(q.depth * duration / capacity, 3)
        rows.append(
            {
                "model": q.model,
                "depth": q.depth,
                "oldest_wait_s": round(q.oldest_wait, 3),
                "estimated_wait_s": estimate,
                "in_flight": sum(svc.slots.in_flight.get((n.node_id, q.model), 0) for n in nodes),
                "capacity": capacity,
            }
        )
    return rows

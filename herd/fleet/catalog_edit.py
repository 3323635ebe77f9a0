"""The router's own catalog edits (pure): after a pull, delete, copy or create succeeds on a node, the snapshot
is changed at once so `/api/tags` and `/v1/models` are right on the next call; the node's next heartbeat
confirms (or corrects) it.

`herd.web.manage_api` calls these through `Registry.edit`. Each returns a new `FleetSnapshot` (the same one if
the node is unknown or nothing changes); liveness (`last_seen`, `status`) is never touched, only the models.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from herd.fleet.state import FleetSnapshot, NodeState, capabilities_of, normalize_model


def stamp(now: float) -> str:
    """`modified_at` as Ollama writes it (RFC 3339)."""
    return datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")


def _entry(node: NodeState, name: str) -> dict[str, Any] | None:
    wanted = normalize_model(name)
    return next((m for m in node.heartbeat.models if normalize_model(m["name"]) == wanted), None)


def _with_models(snap: FleetSnapshot, node: NodeState, models: list[dict[str, Any]]) -> FleetSnapshot:
    names = frozenset(normalize_model(m["name"]) for m in models)
    loaded = tuple(m for m in node.heartbeat.loaded if normalize_model(m["name"]) in names)
    hb = replace(node.heartbeat, models=tuple(models), loaded=loaded)
    state = replace(
        node,
        heartbeat=hb,
        models=names,
        loaded=node.loaded & names,
        sizes=MappingProxyType(
            {normalize_model(m["name"]): m["size"] for m in models if isinstance(m.get("size"), int)}
        ),
        capabilities=MappingProxyType(
            {
                normalize_model(m["name"]): capabilities_of(m["capabilities"], hb.backend)
                for m in models
                if isinstance(m.get("capabilities"), list)
            }
        ),
    )
    return snap.with_nodes({**snap.nodes, node.node_id: state})


def added(snap: FleetSnapshot, node_id: str, name: str, now: float, like: str | None = None) -> FleetSnapshot:
    """`name` is now on `node_id` (pulled, copied or created). Its entry copies `like`'s (the copy's source,
    the create's base) when the node has it, else carries only what is known: the name and the time."""
    node = snap.nodes.get(node_id)
    if node is None or not name.strip():
        return snap
    full = normalize_model(name)
    base = _entry(node, like) if like else None
    entry: dict[str, Any] = {**(base or {}), "name": full, "model": full, "modified_at": stamp(now)}
    if base is None:
        entry.setdefault("details", {})
    models = [m for m in node.heartbeat.models if normalize_model(m["name"]) != full]
    return _with_models(snap, node, [entry, *models])


def removed(snap: FleetSnapshot, node_id: str, name: str) -> FleetSnapshot:
    """`name` was deleted from `node_id`."""
    node = snap.nodes.get(node_id)
    if node is None or _entry(node, name) is None:
        return snap
    gone = normalize_model(name)
    return _with_models(snap, node, [m for m in node.heartbeat.models if normalize_model(m["name"]) != gone])

"""Fleet-wide model listings (pure): merges per-node `/api/tags` and `/api/ps` entries from a snapshot into the
one-entry-per-model lists the Ollama and OpenAI model endpoints return."""

from __future__ import annotations

from typing import Any

from herd.fleet.state import FleetSnapshot, NodeState, NodeStatus, normalize_model


def _serving(snap: FleetSnapshot) -> list[NodeState]:
    return [n for n in snap.nodes.values() if n.status is not NodeStatus.OFFLINE and n.heartbeat.backend_up]


def _merge(entries: list[dict[str, Any]], newest_key: str) -> list[dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = normalize_model(entry["name"])
        kept = best.get(name)
        if kept is None or str(entry.get(newest_key, "")) > str(kept.get(newest_key, "")):
            best[name] = entry
    return list(best.values())


def merged_tags(snap: FleetSnapshot) -> list[dict[str, Any]]:
    """Every model on disk somewhere in the fleet, once, newest first (as Ollama orders `/api/tags`). Each
    entry also says which nodes serve it (`nodes`) and, where known, what it can do (`capabilities`)."""
    serving = _serving(snap)
    merged = _merge([m for n in serving for m in n.heartbeat.models], "modified_at")
    merged.sort(key=lambda m: str(m.get("modified_at", "")), reverse=True)
    out = []
    for entry in merged:
        name = normalize_model(entry["name"])
        nodes = sorted(n.node_id for n in serving if name in n.models)
        caps = sorted({c for n in serving for c in n.capabilities.get(name, ())})
        item = {**entry, "nodes": nodes}
        if caps:
            item["capabilities"] = caps
        out.append(item)
    return out


def merged_ps(snap: FleetSnapshot) -> list[dict[str, Any]]:
    """Every loaded model in the fleet, once (the copy that stays loaded longest)."""
    merged = _merge([m for n in _serving(snap) for m in n.heartbeat.loaded], "expires_at")
    merged.sort(key=lambda m: str(m.get("name", "")))
    return merged


def find_model(snap: FleetSnapshot, name: str) -> dict[str, Any] | None:
    wanted = normalize_model(name)
    for entry in merged_tags(snap):
        if normalize_model(entry["name"]) == wanted:
            return entry
    return None


def fleet_version(snap: FleetSnapshot, fallback: str) -> str:
    """The oldest backend version among serving nodes, so clients never assume a feature some node lacks."""
    versions = [v for n in _serving(snap) if (v := n.heartbeat.ollama_version)]
    if not versions:
        return fallback

    def key(v: str) -> tuple[int, ...]:
        parts = []
        for p in v.split("-")[0].split("."):
            parts.append(int(p) if p.isdigit() else 0)
        return tuple(parts)

    return min(versions, key=key)

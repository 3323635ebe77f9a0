"""Recommendations (pure): what an operator could change, from usage per model, benchmark results, each node's
memory and models, and queue waits. `GET /fleet/recommendations` builds `Facts` with `facts_from` and shows
`recommend(facts)`; each item carries its reason, the numbers behind it and, when one exists, the management
call that applies it (the dashboard's button posts it as is).

Kinds: `keep_loaded` (a busy model: keep it loaded where it runs fastest), `short_capacity` (requests for it
wait in the queue: add a node), `pull` (asked for, on no node), `unused` (on disk, never asked for),
`unload` (loaded, never asked for), `quantisation` (the model's quantisation does not suit the node's memory).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from herd.fleet.state import FleetSnapshot, normalize_model
from herd.insight.bench import BenchResult

GIB = 2**30
BUSY_PER_DAY = 20.0  # requests a day that make a model worth keeping loaded
WAIT_S = 2.0  # mean queue wait per request that means the fleet is short of capacity
TIGHT = 0.8  # a model bigger than this share of a node's memory leaves too little room
ROOMY = 0.25  # a busy model smaller than this share could afford a better quantisation
LARGE_QUANTS = ("F32", "F16", "BF16", "Q8_0", "Q6_K")
SMALL_QUANTS = ("Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ2", "IQ3", "Q4_0")


@dataclass(frozen=True, slots=True)
class ModelUse:
    requests: int = 0
    errors: int = 0
    queue_wait_s: float = 0.0
    max_queue_wait_s: float = 0.0
    by_node: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeFacts:
    node_id: str
    mem_total: int
    mem_available: int
    disk_free: int
    manages_models: bool  # Ollama: herd can pull, load, unload and delete there
    sizes: Mapping[str, int]  # model -> bytes on disk
    quants: Mapping[str, str]  # model -> quantisation level, when known
    loaded: frozenset[str]


@dataclass(frozen=True, slots=True)
class Facts:
    days: int
    usage: Mapping[str, ModelUse]
    nodes: tuple[NodeFacts, ...]
    bench: Mapping[tuple[str, str], BenchResult] = field(default_factory=dict)
    waiting: Mapping[str, int] = field(default_factory=dict)  # live queue depth per model


def _item(
    kind: str,
    model: str,
    node: str | None,
    reason: str,
    numbers: dict[str, Any],
    action: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "model": model,
        "node": node,
        "reason": reason,
        "numbers": numbers,
        "action": action,
    }


def _load(model: str, keep_alive: int | str) -> dict[str, Any]:
    return {"method": "POST", "path": "/api/generate", "body": {"model": model, "keep_alive": keep_alive}}


def _gib(n: int) -> float:
    return round(n / GIB, 1)


def _speed(facts: Facts, node_id: str, model: str) -> float:
    r = facts.bench.get((node_id, model))
    return r.gen_tps if r is not None and r.gen_tps else 0.0


def _fits(node: NodeFacts, size: int, model: str) -> bool:
    """Room to hold `size` bytes loaded (what it uses already counts when it is loaded)."""
    return size <= node.mem_available + (size if model in node.loaded else 0)


def _pull_target(facts: Facts, model: str, size: int) -> NodeFacts | None:
    """A node that can manage models, lacks `model`, has the disk and the memory for it: the roomiest."""
    fit = [
        n
        for n in facts.nodes
        if n.manages_models and model not in n.sizes and n.disk_free >= size and n.mem_available >= size
    ]
    return max(fit, key=lambda n: (n.mem_available, n.disk_free, n.node_id), default=None)


def recommend(facts: Facts) -> list[dict[str, Any]]:
    """Every recommendation for the fleet as it is, most pressing first (capacity, then the rest)."""
    items: list[dict[str, Any]] = []
    on_disk: dict[str, list[NodeFacts]] = {}
    for n in facts.nodes:
        for m in n.sizes:
            on_disk.setdefault(m, []).append(n)
    for model, use in sorted(facts.usage.items()):
        per_day = use.requests / max(1, facts.days)
        mean_wait = use.queue_wait_s / use.requests if use.requests else 0.0
        holders = on_disk.get(model, [])
        size = max((n.sizes[model] for n in holders), default=0)
        if not holders:
            if use.requests:
                target = _pull_target(facts, model, 0)
                items.append(
                    _item(
                        "pull",
                        model,
                        target.node_id if target else None,
                        f"asked for {use.requests} times in {facts.days} days but no node has it",
                        {"requests": use.requests, "errors": use.errors},
                        {
                            "method": "POST",
                            "path": "/api/pull",
                            "body": {"model": model, "node": target.node_id},
                        }
                        if target
                        else None,
                    )
                )
            continue
        if mean_wait >= WAIT_S or facts.waiting.get(model, 0):
            target = _pull_target(facts, model, size)
            numbers = {
                "requests": use.requests,
                "mean_queue_wait_s": round(mean_wait, 2),
                "max_queue_wait_s": use.max_queue_wait_s,
                "waiting_now": facts.waiting.get(model, 0),
                "nodes_with_model": len(holders),
            }
            items.append(
                _item(
                    "short_capacity",
                    model,
                    target.node_id if target else None,
                    f"requests waited {mean_wait:.1f} s on average for a free slot"
                    + (
                        f"; pull it onto {target.node_id} too"
                        if target
                        else "; no other node has room for it"
                    ),
                    numbers,
                    {"method": "POST", "path": "/api/pull", "body": {"model": model, "node": target.node_id}}
                    if target
                    else None,
                )
            )
        if per_day >= BUSY_PER_DAY:
            fits = [n for n in holders if _fits(n, n.sizes[model], model)]
            best = max(
                fits,
                key=lambda n: (_speed(facts, n.node_id, model), use.by_node.get(n.node_id, 0)),
                default=None,
            )
            if best is not None:
                speed = _speed(facts, best.node_id, model)
                items.append(
                    _item(
                        "keep_loaded",
                        model,
                        best.node_id,
                        f"{per_day:.0f} requests a day; {best.node_id} "
                        + (f"generates fastest ({speed:.0f} tokens/s)" if speed else "serves most of them")
                        + (" and has it loaded" if model in best.loaded else " and has room to load it"),
                        {
                            "requests_per_day": round(per_day, 1),
                            "gen_tps": speed or None,
                            "size_gib": _gib(size),
                        },
                        _load(model, -1) if best.manages_models else None,
                    )
                )
    # No request at all in the window: the router has just started (or the history is gone), not evidence that
    # nothing is used.
    evidence = any(u.requests for u in facts.usage.values())
    for node in facts.nodes if evidence else ():
        for model, size in sorted(node.sizes.items()):
            use = facts.usage.get(model, ModelUse())
            quant = node.quants.get(model, "").upper()
            share = size / node.mem_total if node.mem_total else 0.0
            if use.requests == 0 and model in node.loaded:
                items.append(
                    _item(
                        "unload",
                        model,
                        node.node_id,
                        f"loaded but not asked for in {facts.days} days; frees {_gib(size)} GiB",
                        {"size_gib": _gib(size), "requests": 0},
                        _load(model, 0) if node.manages_models else None,
                    )
                )
            elif use.requests == 0 and node.manages_models:
                items.append(
                    _item(
                        "unused",
                        model,
                        node.node_id,
                        f"not asked for in {facts.days} days; deleting frees {_gib(size)} GiB of disk",
                        {"size_gib": _gib(size), "requests": 0},
                        {
                            "method": "DELETE",
                            "path": "/api/delete",
                            "body": {"model": model, "node": node.node_id},
                        },
                    )
                )
            if share >= TIGHT and quant.startswith(LARGE_QUANTS):
                reason = f"{quant} takes {share:.0%} of {node.node_id}'s memory; a Q4_K_M build would fit with room"
            elif (
                use.requests / max(1, facts.days) >= BUSY_PER_DAY
                and share <= ROOMY
                and quant.startswith(SMALL_QUANTS)
            ):
                reason = f"busy, and {quant} uses only {share:.0%} of {node.node_id}'s memory; Q8_0 would answer better"
            else:
                continue
            items.append(
                _item(
                    "quantisation",
                    model,
                    node.node_id,
                    reason,
                    {"quantization": quant, "size_gib": _gib(size), "mem_total_gib": _gib(node.mem_total)},
                    None,
                )
            )
    order = {"short_capacity": 0, "pull": 1, "keep_loaded": 2, "unload": 3, "quantisation": 4, "unused": 5}
    return sorted(items, key=lambda i: order[i["kind"]])


def facts_from(
    snap: FleetSnapshot,
    usage_rows: Iterable[Mapping[str, Any]],
    bench: Mapping[tuple[str, str], BenchResult],
    waiting: Mapping[str, int],
    days: int,
) -> Facts:
    """Facts from the live snapshot, the `usage_daily` rows of the window and the benchmark priors (pure)."""
    acc: dict[str, dict[str, Any]] = {}
    for r in usage_rows:
        a = acc.setdefault(r["model"], {"requests": 0, "errors": 0, "wait": 0.0, "max": 0.0, "by_node": {}})
        a["requests"] += r["requests"]
        a["errors"] += r["errors"]
        a["wait"] += r["queue_wait_s"]
        a["max"] = max(a["max"], r["max_queue_wait_s"])
        if r["node"]:
            a["by_node"][r["node"]] = a["by_node"].get(r["node"], 0) + r["requests"]
    usage = {
        m: ModelUse(a["requests"], a["errors"], a["wait"], a["max"], a["by_node"]) for m, a in acc.items()
    }
    nodes = []
    for n in sorted(snap.nodes.values(), key=lambda n: n.node_id):
        if not n.routable:
            continue
        hb = n.heartbeat
        quants = {
            normalize_model(e["name"]): str((e.get("details") or {}).get("quantization_level") or "")
            for e in hb.models
        }
        nodes.append(
            NodeFacts(
                n.node_id,
                hb.host.mem_total,
                hb.host.mem_available,
                hb.host.disk_free,
                hb.speaks_ollama,
                {m: n.sizes.get(m, 0) for m in n.models},
                quants,
                n.loaded,
            )
        )
    return Facts(days, usage, tuple(nodes), bench, waiting)

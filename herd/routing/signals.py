"""Scoring inputs and the per-node, load-independent part of a score (pure): elimination reasons and the
thermal, memory, role and availability signals, plus the config, request facts and candidate types that
`herd.routing.score.Scorer` combines with live load. Formulas and defaults: `docs/routing.md`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from herd.fleet.state import NodeState, NodeStatus
from herd.routing.guest import in_meeting, strain, usable_memory

SIGNALS = ("thermal", "memory", "queue", "wait", "role", "availability", "context", "strain", "outlook")


@dataclass(frozen=True, slots=True)
class Weights:
    thermal: float = 3.0
    memory: float = 1.0
    queue: float = 2.0
    wait: float = 3.0
    role: float = 0.5
    availability: float = 1.0
    context: float = 1.0
    strain: float = 2.0
    outlook: float = 1.0


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    weights: Weights = field(default_factory=Weights)
    warm_window: float = 600.0  # s since a model left memory that still counts as warm
    warm_value: float = 0.5  # thermal signal of a warm model (hot = 1, cold = 0)
    critical_memory: float = 0.03  # below this share of memory available, no cold loads
    fit_margin: float = 0.9  # a cold model must fit in this share of the node's total memory
    default_duration: float = 5.0  # s per request when nothing has been observed
    cold_load: float = 10.0  # s a cold load is assumed to take when nothing has been observed
    context_reload: float = 0.2  # context signal when the loaded context is too small (forces a reload)
    top: int = 8  # candidates returned per decision
    default_output: int = 256  # output tokens planned for before a model's output lengths were observed
    explore_samples: int = 3  # a node with fewer observations of a model is "unmeasured" and explored
    explore_discount: float = 0.9  # an unmeasured node's service time: at most this x the best measured one
    wait_floor: float = 0.1  # s added to both sides of the wait ratio (keeps it finite and smooth)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the request asks for, as far as routing cares."""

    model: str
    num_ctx: int | None = None
    prompt_tokens: int = 0
    needs: frozenset[str] = frozenset()  # capabilities the request needs, e.g. {"vision"} for images
    output_tokens: int = 0  # expected output (0: `ScoringConfig.default_output`)
    cached: Mapping[str, int] = field(default_factory=dict)  # node id -> prompt tokens its cache holds


@dataclass(frozen=True, slots=True)
class Candidate:
    node: NodeState
    score: float
    breakdown: Mapping[str, float]
    full: bool
    hot: bool
    est_wait: float  # predicted seconds to the last token (`herd.routing.estimate`)
    saved: float = 0.0  # of which the node's prompt cache saves this much (conversation affinity)


def _size(node: NodeState, model: str) -> int:
    return node.sizes.get(model, 0)


def _loaded_ctx(node: NodeState, model: str) -> int | None:
    return node.contexts.get(model)


def eliminate(
    node: NodeState,
    model: str,
    cfg: ScoringConfig,
    broken: frozenset[str],
    ejected: frozenset[str] = frozenset(),
) -> str | None:
    """Why `node` cannot take `model` at all, or None."""
    hb = node.heartbeat
    if node.status is not NodeStatus.ONLINE:
        return node.status.value
    if hb.draining:
        return "draining"
    if in_meeting(hb):
        return "owner in a meeting"
    if not hb.backend_up:
        return "backend down"
    if model not in node.models:
        return "model absent"
    if node.node_id in broken:
        return "circuit open"
    if node.node_id in ejected:
        return "ejected (outlier)"
    if model not in node.loaded:
        host = hb.host
        size = _size(node, model)
        if host.mem_total and size > cfg.fit_margin * host.mem_total:
            return "does not fit in memory"
        if host.mem_total and usable_memory(hb) / host.mem_total < cfg.critical_memory:
            return "critical memory pressure"
    return None


@dataclass(frozen=True, slots=True)
class _Static:
    """The per-snapshot part of a node's score for one model (load-independent signals)."""

    node: NodeState
    hot: bool
    thermal: float
    memory: float
    role: float
    availability: float
    load_cost: float  # seconds to load first (0 when hot)
    loaded_ctx: int | None
    strain: float = 1.0  # thermal throttling, battery, owner CPU (herd.routing.guest)


def _static(
    node: NodeState, model: str, cfg: ScoringConfig, now: float, fleet_mem: int, fleet_size: int
) -> _Static:
    hb = node.heartbeat
    hot = model in node.loaded
    if hot:
        thermal = 1.0
    else:
        unloaded = node.unloaded_at.get(model)
        thermal = cfg.warm_value if unloaded is not None and now - unloaded < cfg.warm_window else 0.0
    size = _size(node, model)
    if hot:
        memory = 1.0
    elif hb.host.mem_total:
        memory = min(1.0, max(0.0, (usable_memory(hb) - size) / hb.host.mem_total) * 2)
    else:
        memory = 0.5
    model_rank = size / fleet_size if fleet_size else 0.5
    node_rank = hb.host.mem_total / fleet_mem if fleet_mem else 0.5
    role = 1.0 - abs(model_rank - node_rank)
    availability = 1.0 / (1.0 + len(node.incidents))
    load_cost = 0.0 if hot else cfg.cold_load * (0.5 if thermal > 0 else 1.0)
    return _Static(
        node, hot, thermal, memory, role, availability, load_cost, _loaded_ctx(node, model), strain(hb)
    )

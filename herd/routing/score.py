"""Scoring (pure): which node will answer a request soonest. Elimination, then seven weighted signals, over
an immutable fleet snapshot plus a small view of live load. `herd.routing.proxy` asks `Scorer.rank` before
every attempt; `docs/routing.md` gives every formula and default (a test keeps it in step with `Weights`).

Fast at fleet scale: everything that depends only on the snapshot and the latency book is computed once per
(snapshot version, latency version, model) and kept sorted; a decision then re-scores only the nodes that have
requests in flight for the model and merges them with the best idle ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from herd.fleet.state import FleetSnapshot, NodeState, NodeStatus, normalize_model
from herd.routing.latency import LatencyStats

SIGNALS = ("thermal", "memory", "queue", "wait", "role", "availability", "context")


@dataclass(frozen=True, slots=True)
class Weights:
    thermal: float = 3.0
    memory: float = 1.0
    queue: float = 2.0
    wait: float = 3.0
    role: float = 0.5
    availability: float = 1.0
    context: float = 1.0


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


@dataclass(frozen=True, slots=True)
class Facts:
    """What the request asks for, as far as routing cares."""

    model: str
    num_ctx: int | None = None
    prompt_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Candidate:
    node: NodeState
    score: float
    breakdown: Mapping[str, float]
    full: bool
    hot: bool
    est_wait: float


def _size(node: NodeState, model: str) -> int:
    for entry in node.heartbeat.models:
        if normalize_model(entry["name"]) == model:
            size = entry.get("size")
            return size if isinstance(size, int) else 0
    return 0


def _loaded_ctx(node: NodeState, model: str) -> int | None:
    for entry in node.heartbeat.loaded:
        if normalize_model(entry["name"]) == model:
            ctx = entry.get("context_length")
            return ctx if isinstance(ctx, int) and ctx > 0 else None
    return None


def eliminate(node: NodeState, model: str, cfg: ScoringConfig, broken: frozenset[str]) -> str | None:
    """Why `node` cannot take `model` at all, or None."""
    hb = node.heartbeat
    if node.status is not NodeStatus.ONLINE:
        return node.status.value
    if hb.draining:
        return "draining"
    if not hb.backend_up:
        return "backend down"
    if model not in node.models:
        return "model absent"
    if node.node_id in broken:
        return "circuit open"
    if model not in node.loaded:
        host = hb.host
        size = _size(node, model)
        if host.mem_total and size > cfg.fit_margin * host.mem_total:
            return "does not fit in memory"
        if host.mem_total and host.mem_available / host.mem_total < cfg.critical_memory:
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
    duration: float  # p75 seconds per request on this node for this model
    load_cost: float  # seconds to load first (0 when hot)
    loaded_ctx: int | None


def _static(
    node: NodeState,
    model: str,
    cfg: ScoringConfig,
    now: float,
    fleet_mem: int,
    fleet_size: int,
    stats: LatencyStats | None,
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
        memory = min(1.0, max(0.0, (hb.host.mem_available - size) / hb.host.mem_total) * 2)
    else:
        memory = 0.5
    model_rank = size / fleet_size if fleet_size else 0.5
    node_rank = hb.host.mem_total / fleet_mem if fleet_mem else 0.5
    role = 1.0 - abs(model_rank - node_rank)
    availability = 1.0 / (1.0 + len(node.incidents))
    duration = stats.duration_s if stats is not None and stats.n else cfg.default_duration
    load_cost = 0.0 if hot else cfg.cold_load * (0.5 if thermal > 0 else 1.0)
    return _Static(
        node, hot, thermal, memory, role, availability, duration, load_cost, _loaded_ctx(node, model)
    )


class Scorer:
    """Holds only memoised, derived data; `rank` is a pure function of its arguments."""

    def __init__(self, cfg: ScoringConfig | None = None) -> None:
        self.cfg = cfg or ScoringConfig()
        self._key: tuple[int, int] | None = None
        self._by_model: dict[str, tuple[list[_Static], dict[str, str]]] = {}
        self._fleet_mem = 0
        self._fleet_size = 0

    def eliminated(self, snap: FleetSnapshot, model: str) -> dict[str, str]:
        """node_id -> why it cannot serve `model` at all."""
        return {
            n.node_id: why for n in snap.nodes.values() if (why := eliminate(n, model, self.cfg, frozenset()))
        }

    def _statics(
        self,
        snap: FleetSnapshot,
        model: str,
        now: float,
        latency: Mapping[tuple[str, str], LatencyStats],
        latency_version: int,
    ) -> tuple[list[_Static], dict[str, str]]:
        key = (snap.version, latency_version)
        if key != self._key:
            self._key, self._by_model = key, {}
            hosts = [n.heartbeat for n in snap.nodes.values()]
            self._fleet_mem = max((hb.host.mem_total for hb in hosts), default=0)
            sizes = [e.get("size") for hb in hosts for e in hb.models]
            self._fleet_size = max((s for s in sizes if isinstance(s, int)), default=0)
        cached = self._by_model.get(model)
        if cached is not None:
            return cached
        fleet_mem, fleet_size = self._fleet_mem, self._fleet_size
        statics: list[_Static] = []
        reasons: dict[str, str] = {}
        for node in snap.nodes.values():
            why = eliminate(node, model, self.cfg, frozenset())
            if why is not None:
                reasons[node.node_id] = why
                continue
            statics.append(
                _static(node, model, self.cfg, now, fleet_mem, fleet_size, latency.get((node.node_id, model)))
            )
        w = self.cfg.weights
        statics.sort(
            key=lambda s: (
                -(
                    w.thermal * s.thermal
                    + w.memory * s.memory
                    + w.role * s.role
                    + w.availability * s.availability
                    - w.wait * s.load_cost / 60
                )
            )
        )
        self._by_model[model] = (statics, reasons)
        return statics, reasons

    def rank(
        self,
        snap: FleetSnapshot,
        facts: Facts,
        *,
        now: float,
        in_flight: Mapping[tuple[str, str], int],
        capacity: Callable[[str, str], int],
        latency: Mapping[tuple[str, str], LatencyStats],
        latency_version: int = 0,
        broken: frozenset[str] = frozenset(),
        exclude: frozenset[str] | set[str] = frozenset(),
    ) -> list[Candidate]:
        """The best `top` candidates, not-full first, then by score. Eliminated nodes never appear."""
        model = facts.model
        statics, _ = self._statics(snap, model, now, latency, latency_version)
        busy = [s for s in statics if in_flight.get((s.node.node_id, model))]
        idle: list[_Static] = []
        for s in statics:  # already in static-score order: the first few idle ones are the best idle ones
            if len(idle) >= self.cfg.top:
                break
            if not in_flight.get((s.node.node_id, model)):
                idle.append(s)
        pool = [s for s in busy + idle if s.node.node_id not in exclude and s.node.node_id not in broken]
        if not pool:
            return []
        scored = [self._score(s, facts, in_flight, capacity) for s in pool]
        best_wait = min(min(c[1] for c in scored), 1e9)
        out = []
        w = self.cfg.weights
        total_w = sum(getattr(w, name) for name in SIGNALS)
        for s, wait, queue, context, full in scored:
            parts = {
                "thermal": s.thermal,
                "memory": s.memory,
                "queue": queue,
                "wait": (best_wait + 1.0) / (min(wait, 1e9) + 1.0),
                "role": s.role,
                "availability": s.availability,
                "context": context,
            }
            score = sum(getattr(w, k) * v for k, v in parts.items()) / total_w
            out.append(Candidate(s.node, score, parts, full, s.hot, wait))
        out.sort(key=lambda c: (c.full, -c.score, c.node.node_id))
        return out[: self.cfg.top]

    def _score(
        self,
        s: _Static,
        facts: Facts,
        in_flight: Mapping[tuple[str, str], int],
        capacity: Callable[[str, str], int],
    ) -> tuple[_Static, float, float, float, bool]:
        node_id, model = s.node.node_id, facts.model
        running = in_flight.get((node_id, model), 0)
        room = capacity(node_id, model)  # 0 while the node said "busy"
        full = running >= room
        cap = max(1, room)
        queue = max(0.0, 1.0 - running / cap)
        # requests ahead of this one, spread over the slots, each taking the p75 duration; plus any load
        ahead = max(0, running - cap + 1)
        # a node that said "busy" has a queue of its own we cannot see: never worth waiting for
        wait = math.inf if room == 0 else s.load_cost + ahead * s.duration / cap
        needed = facts.num_ctx or 0
        if s.loaded_ctx is None or not needed or s.loaded_ctx >= needed:
            context = 1.0
        else:
            context = self.cfg.context_reload
        return s, wait, queue, context, full


def format_headers(cands: list[Candidate], limit: int = 5) -> dict[str, str]:
    if not cands:
        return {}
    return {
        "X-Herd-Score": f"{cands[0].score:.3f}",
        "X-Herd-Candidates": ",".join(f"{c.node.node_id}={c.score:.3f}" for c in cands[:limit]),
    }


def breakdown_text(c: Candidate) -> str:
    return ",".join(f"{k}={v:.3f}" for k, v in c.breakdown.items() if not math.isnan(v))

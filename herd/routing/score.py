"""Scoring (pure): which node will answer a request soonest. Elimination, then seven weighted signals, over
an immutable fleet snapshot plus a small view of live load. `herd.routing.proxy` asks `Scorer.rank` before
every attempt; `docs/routing.md` gives every formula and default (a test keeps it in step with `Weights`).

Fast at fleet scale: everything that depends only on the snapshot and the latency book is computed once per
(snapshot version, latency version, model) and kept sorted; a decision then re-scores only the nodes that have
requests in flight for the model and merges them with the best idle ones.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from herd.fleet.state import FleetSnapshot, NodeState, NodeStatus
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
    return node.sizes.get(model, 0)


def _loaded_ctx(node: NodeState, model: str) -> int | None:
    return node.contexts.get(model)


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
    load_cost: float  # seconds to load first (0 when hot)
    loaded_ctx: int | None


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
        memory = min(1.0, max(0.0, (hb.host.mem_available - size) / hb.host.mem_total) * 2)
    else:
        memory = 0.5
    model_rank = size / fleet_size if fleet_size else 0.5
    node_rank = hb.host.mem_total / fleet_mem if fleet_mem else 0.5
    role = 1.0 - abs(model_rank - node_rank)
    availability = 1.0 / (1.0 + len(node.incidents))
    load_cost = 0.0 if hot else cfg.cold_load * (0.5 if thermal > 0 else 1.0)
    return _Static(node, hot, thermal, memory, role, availability, load_cost, _loaded_ctx(node, model))


class _ModelIndex:
    """One model's eligible nodes, sorted by their load-independent score, kept up to date incrementally."""

    __slots__ = ("by_node", "dims", "gen", "order")

    def __init__(self, dims: tuple[int, int, int], gen: int) -> None:
        self.gen = gen  # the scorer's snapshot generation this index reflects
        self.dims = dims
        self.by_node: dict[str, tuple[float, _Static]] = {}
        self.order: list[tuple[float, str]] = []  # (-static score, node_id), ascending = best first


class Scorer:
    """Holds only memoised, derived data; `rank` is a pure function of its arguments.

    Per model it keeps the eligible nodes sorted by their load-independent score. A new snapshot (a heartbeat
    replaces one node) is applied by diffing node objects by identity and re-placing only the nodes that
    changed, so a decision stays well under a millisecond on a 1,000-node fleet even while heartbeats arrive.
    """

    def __init__(self, cfg: ScoringConfig | None = None) -> None:
        self.cfg = cfg or ScoringConfig()
        self._index: dict[str, _ModelIndex] = {}
        self._seen: Mapping[str, NodeState] | None = None
        self._gen = 0
        self._log: deque[tuple[int, list[str]]] = deque(maxlen=4096)
        self._dims = (0, 0)

    def eliminated(self, snap: FleetSnapshot, model: str) -> dict[str, str]:
        """node_id -> why it cannot serve `model` at all."""
        return {
            n.node_id: why for n in snap.nodes.values() if (why := eliminate(n, model, self.cfg, frozenset()))
        }

    def _advance(self, snap: FleetSnapshot) -> int:
        """Note a new snapshot: which nodes differ (by identity) from the last one seen, and the fleet-wide
        maxima, updated from those nodes alone unless a node that held a maximum shrank or left."""
        nodes = snap.nodes
        if nodes is self._seen:
            return self._gen
        before: Mapping[str, NodeState] = self._seen if self._seen is not None else {}
        changed = [k for k, v in nodes.items() if before.get(k) is not v]
        new_ids = sum(1 for k in changed if k not in before)
        removed = [k for k in before if k not in nodes] if len(before) + new_ids != len(nodes) else []
        mem, size = self._dims
        full = not before or bool(removed)
        for node_id in changed:
            node, old = nodes[node_id], before.get(node_id)
            n_mem, n_size = node.heartbeat.host.mem_total, max(node.sizes.values(), default=0)
            if old is not None and (
                (old.heartbeat.host.mem_total == mem and n_mem < mem)
                or (max(old.sizes.values(), default=0) == size and n_size < size)
            ):
                full = True
            mem, size = max(mem, n_mem), max(size, n_size)
        if full:
            mem = max((n.heartbeat.host.mem_total for n in nodes.values()), default=0)
            size = max((max(n.sizes.values(), default=0) for n in nodes.values()), default=0)
        self._dims = (mem, size)
        self._gen += 1
        self._log.append((self._gen, changed + removed))
        self._seen = nodes
        return self._gen

    def _place(self, idx: _ModelIndex, node: NodeState, model: str, now: float) -> None:
        node_id = node.node_id
        old = idx.by_node.pop(node_id, None)
        if old is not None:
            at = bisect.bisect_left(idx.order, (old[0], node_id))
            del idx.order[at]
        if eliminate(node, model, self.cfg, frozenset()) is not None:
            return
        st = _static(node, model, self.cfg, now, idx.dims[0], idx.dims[1])
        w = self.cfg.weights
        key = -(
            w.thermal * st.thermal
            + w.memory * st.memory
            + w.role * st.role
            + w.availability * st.availability
            - w.wait * st.load_cost / 60
        )
        idx.by_node[node_id] = (key, st)
        bisect.insort(idx.order, (key, node_id))

    def _model_index(self, snap: FleetSnapshot, model: str, now: float) -> _ModelIndex:
        gen = self._advance(snap)
        dims = (self._dims[0], self._dims[1], int(now // 60))
        idx = self._index.get(model)
        if idx is not None and idx.dims == dims and idx.gen == gen:
            return idx
        if idx is None or idx.dims != dims or not self._log or self._log[0][0] > idx.gen + 1:
            idx = _ModelIndex(dims, gen)  # first use, new fleet dimensions, or too far behind: rebuild
            for node in snap.nodes.values():
                self._place(idx, node, model, now)
            self._index[model] = idx
            return idx
        touched: set[str] = set()
        for entry_gen, ids in reversed(self._log):
            if entry_gen <= idx.gen:
                break
            touched.update(ids)
        for node_id in touched:
            current = snap.nodes.get(node_id)
            if current is None:
                old = idx.by_node.pop(node_id, None)
                if old is not None:
                    del idx.order[bisect.bisect_left(idx.order, (old[0], node_id))]
            else:
                self._place(idx, current, model, now)
        idx.gen = gen
        return idx

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
        idx = self._model_index(snap, model, now)
        by_node = idx.by_node
        busy = [
            by_node[node_id][1]
            for (node_id, m), n in in_flight.items()
            if n and m == model and node_id in by_node
        ]
        idle: list[_Static] = []
        for _, node_id in idx.order:  # best first: the first few idle ones are the best idle ones
            if len(idle) >= self.cfg.top:
                break
            if not in_flight.get((node_id, model)):
                idle.append(by_node[node_id][1])
        pool = [s for s in busy + idle if s.node.node_id not in exclude and s.node.node_id not in broken]
        if not pool:
            return []
        scored = [
            self._score(s, facts, in_flight, capacity, latency.get((s.node.node_id, model))) for s in pool
        ]
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
        stats: LatencyStats | None,
    ) -> tuple[_Static, float, float, float, bool]:
        node_id, model = s.node.node_id, facts.model
        running = in_flight.get((node_id, model), 0)
        room = capacity(node_id, model)  # 0 while the node said "busy"
        full = running >= room
        cap = max(1, room)
        queue = max(0.0, 1.0 - running / cap)
        # requests ahead of this one, spread over the slots, each taking the p75 duration; plus any load
        ahead = max(0, running - cap + 1)
        duration = stats.duration_s if stats is not None and stats.n else self.cfg.default_duration
        # a node that said "busy" has a queue of its own we cannot see: never worth waiting for
        wait = math.inf if room == 0 else s.load_cost + ahead * duration / cap
        needed = facts.num_ctx or 0
        if s.loaded_ctx is None or not needed or s.loaded_ctx >= needed:
            context = 1.0
        else:
            context = self.cfg.context_reload
        return s, wait, queue, context, full


def decide(ranked: list[Candidate]) -> Candidate | None:
    """The candidate to take a slot on now, or None to keep waiting in the holding queue: every candidate is
    full, or a hot node will free up sooner than the best cold one can load the model."""
    if not ranked or ranked[0].full:
        return None
    best = ranked[0]
    if not best.hot and any(c.hot and c.full and c.est_wait < best.est_wait for c in ranked):
        return None
    return best


def format_headers(cands: list[Candidate], limit: int = 5) -> dict[str, str]:
    if not cands:
        return {}
    return {
        "X-Herd-Score": f"{cands[0].score:.3f}",
        "X-Herd-Candidates": ",".join(f"{c.node.node_id}={c.score:.3f}" for c in cands[:limit]),
    }


def breakdown_text(c: Candidate) -> str:
    return ",".join(f"{k}={v:.3f}" for k, v in c.breakdown.items() if not math.isnan(v))

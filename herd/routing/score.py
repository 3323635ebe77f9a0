"""Scoring (pure): which node will answer a request soonest. Elimination, then seven weighted signals, over
an immutable fleet snapshot plus a small view of live load. `herd.routing.proxy` asks `Scorer.rank` before
every attempt; `docs/routing.md` gives every formula and default (a test keeps it in step with `Weights`).

Fast at fleet scale: the load-independent part of each node's score (`herd.routing.signals`) is kept per model
in a sorted index that a new snapshot updates only for the nodes that changed; a decision then scores the
nodes with requests in flight for the model plus the best few idle ones.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Mapping

from herd.fleet.state import FleetSnapshot, NodeState
from herd.routing.estimate import Estimate, explore, finish_time
from herd.routing.guest import outlook
from herd.routing.latency import LatencyStats
from herd.routing.signals import (  # noqa: F401  (re-exported: the scorer's public types live here too)
    SIGNALS,
    Candidate,
    Facts,
    ScoringConfig,
    Weights,
    _Static,
    _static,
    eliminate,
)

MAX_INDEXED = 4096  # per-model indexes kept (models the fleet has); past that they are rebuilt on demand


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
            + w.strain * st.strain
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
            if snap.knows_model(model):  # kept only for names the fleet has: callers cannot grow it
                if len(self._index) >= MAX_INDEXED:
                    self._index.clear()
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
        needs = facts.needs

        def usable(st: _Static) -> bool:
            node_id = st.node.node_id
            if node_id in exclude or node_id in broken:
                return False
            caps = st.node.capabilities.get(model) if needs else None
            return caps is None or needs <= caps  # unknown capabilities count as able

        idle: list[_Static] = []
        for _, node_id in idx.order:  # best first: the first few usable idle ones are the best idle ones
            if len(idle) >= self.cfg.top:
                break
            if not in_flight.get((node_id, model)) and usable(by_node[node_id][1]):
                idle.append(by_node[node_id][1])
        pool = [st for st in busy if usable(st)] + idle
        if not pool:
            return []
        scored = [
            self._score(s, facts, in_flight, capacity, latency.get((s.node.node_id, model))) for s in pool
        ]
        if len(scored) > 1:  # a lone candidate is its own best measured one: exploring changes nothing
            scored = explore(scored, latency, model, self.cfg)
        best_wait = min(min(c[1].total for c in scored), 1e9)
        out = []
        w = self.cfg.weights
        total_w = w.thermal + w.memory + w.queue + w.wait + w.role + w.availability + w.context + w.strain
        total_w += w.outlook
        floor = self.cfg.wait_floor
        for s, est, queue, context, full in scored:
            wait = est.total
            relative = (best_wait + floor) / (min(wait, 1e9) + floor)
            ahead = outlook(s.node.heartbeat, self._duration(latency.get((s.node.node_id, model))))
            parts = {
                "thermal": s.thermal,
                "memory": s.memory,
                "queue": queue,
                "wait": relative,
                "role": s.role,
                "availability": s.availability,
                "context": context,
                "strain": s.strain,
                "outlook": ahead,
            }
            score = (
                w.thermal * s.thermal
                + w.memory * s.memory
                + w.queue * queue
                + w.wait * relative
                + w.role * s.role
                + w.availability * s.availability
                + w.context * context
                + w.strain * s.strain
                + w.outlook * ahead
            ) / total_w
            out.append(Candidate(s.node, score, parts, full, s.hot, wait, est.saved))
        # equal scores go to the node predicted to finish first; the node id only when nothing tells them apart
        if len(out) > 1:
            out.sort(key=lambda c: (c.full, -c.score, c.est_wait, c.node.node_id))
        return out[: self.cfg.top]

    def _duration(self, stats: LatencyStats | None) -> float:
        return stats.duration_s if stats is not None and stats.n else self.cfg.default_duration

    def _score(
        self,
        s: _Static,
        facts: Facts,
        in_flight: Mapping[tuple[str, str], int],
        capacity: Callable[[str, str], int],
        stats: LatencyStats | None,
    ) -> tuple[_Static, Estimate, float, float, bool]:
        node_id, model = s.node.node_id, facts.model
        running = in_flight.get((node_id, model), 0)
        room = capacity(node_id, model)  # 0 while the node said "busy"
        full = running >= room
        cap = max(1, room)
        queue = max(0.0, 1.0 - running / cap)
        duration = self._duration(stats)
        if room == 0:
            # a node that said "busy" has a queue of its own we cannot see: never worth waiting for
            est = Estimate(math.inf, 0.0, 0.0)
        else:
            est = finish_time(
                stats.perf if stats is not None else None,
                duration=duration,
                load_cost=s.load_cost,
                hot=s.hot,
                running=running,
                cap=cap,
                prompt_tokens=facts.prompt_tokens,
                output_tokens=facts.output_tokens or self.cfg.default_output,
                cached_tokens=facts.cached.get(node_id, 0),
            )
        needed = facts.num_ctx or 0
        if s.loaded_ctx is None or not needed or s.loaded_ctx >= needed:
            context = 1.0
        else:
            context = self.cfg.context_reload
        return s, est, queue, context, full

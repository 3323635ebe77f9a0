"""Routing policies for the simulator. Each sees what a router would see (a `FleetSnapshot` built from the
nodes' heartbeats, requests in flight per (node, model), latency observations) and returns a node id, or None
to hold the request in the router's FIFO queue for its model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from herd.fleet.state import FleetSnapshot
from herd.routing.affinity import AffinityBook, prefixes
from herd.routing.capacity import node_capacity
from herd.routing.choice import decide
from herd.routing.estimate import expected_output
from herd.routing.latency import LatencyBook
from herd.routing.score import Facts, Scorer, ScoringConfig
from herd.sim.node import SimNode, SimRequest


class Policy(Protocol):
    name: str

    def choose(
        self,
        snap: FleetSnapshot,
        model: str,
        in_flight: Mapping[tuple[str, str], int],
        book: LatencyBook,
        now: float,
        req: SimRequest | None = None,
    ) -> str | None: ...


def _having(snap: FleetSnapshot, model: str) -> list[str]:
    return sorted(n.node_id for n in snap.nodes.values() if model in n.models)


def _busy(in_flight: Mapping[tuple[str, str], int], node_id: str) -> int:
    return sum(n for (nid, _), n in in_flight.items() if nid == node_id)


class RoundRobin:
    name = "round-robin"

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def choose(
        self,
        snap: FleetSnapshot,
        model: str,
        in_flight: Mapping[tuple[str, str], int],
        book: LatencyBook,
        now: float,
        req: SimRequest | None = None,
    ) -> str | None:
        nodes = _having(snap, model)
        i = self._next.get(model, 0)
        self._next[model] = i + 1
        return nodes[i % len(nodes)] if nodes else None


class LeastBusy:
    """The node with the fewest requests in flight (all models counted); ties go to the lowest node id."""

    name = "least-busy"

    def choose(
        self,
        snap: FleetSnapshot,
        model: str,
        in_flight: Mapping[tuple[str, str], int],
        book: LatencyBook,
        now: float,
        req: SimRequest | None = None,
    ) -> str | None:
        nodes = self.candidates(snap, model)
        return min(nodes, key=lambda n: (_busy(in_flight, n), n)) if nodes else None

    def candidates(self, snap: FleetSnapshot, model: str) -> list[str]:
        return _having(snap, model)


class LeastBusyHot(LeastBusy):
    """Least busy among the nodes that have the model loaded; least busy overall when none has."""

    name = "least-busy hot"

    def candidates(self, snap: FleetSnapshot, model: str) -> list[str]:
        nodes = _having(snap, model)
        return [n for n in nodes if model in snap.nodes[n].loaded] or nodes


class Oracle:
    """Knows every node's true speed and load: the node with a free slot that finishes this request first
    (holds it in the queue when every slot is taken). A bound no real router reaches."""

    name = "oracle"

    def __init__(self) -> None:
        self.nodes: dict[str, SimNode] = {}

    def bind(self, nodes: dict[str, SimNode]) -> None:
        self.nodes = nodes

    def choose(
        self,
        snap: FleetSnapshot,
        model: str,
        in_flight: Mapping[tuple[str, str], int],
        book: LatencyBook,
        now: float,
        req: SimRequest | None = None,
    ) -> str | None:
        tokens = req.tokens if req is not None else 200
        best: tuple[float, str] | None = None
        for node in self.nodes.values():
            if model not in node.disk or len(node.running) >= node.parallel:
                continue
            speed = node.speed / (1 + node.slowdown * len(node.running))
            load = 0.0 if model in node.loaded else node.disk[model].load_s
            finish = load + node.ttft + tokens / speed
            if best is None or finish < best[0]:
                best = (finish, node.node_id)
        return best[1] if best else None


class Herd:
    """The router's own decision: `Scorer.rank` + `decide`, with the router's slot capacities, the request's
    size, and (with `affinity`) the prefix book fed when requests finish, as the proxy and recorder do."""

    name = "herd"

    def __init__(self, cfg: ScoringConfig | None = None, name: str = "herd", affinity: bool = True) -> None:
        self.scorer = Scorer(cfg)
        self.name = name
        self.affinity = AffinityBook() if affinity else None
        self.listeners = [self._finished] if affinity else []
        self.slots: dict[str, int] = {}

    def bind(self, nodes: dict[str, SimNode]) -> None:
        self.slots = {n.node_id: n.parallel for n in nodes.values()}

    def _finished(self, req: SimRequest, now: float) -> None:
        if self.affinity is not None and req.body is not None and req.node is not None:
            p = prefixes(req.model, req.body)
            if p.whole is not None:
                slots = self.slots.get(req.node, 0)
                self.affinity.remember(p.whole[0], p.whole[1], req.node, now, slots=slots, extends=p.chain)

    def choose(
        self,
        snap: FleetSnapshot,
        model: str,
        in_flight: Mapping[tuple[str, str], int],
        book: LatencyBook,
        now: float,
        req: SimRequest | None = None,
    ) -> str | None:
        def capacity(node_id: str, m: str) -> int:
            return node_capacity(snap.nodes[node_id], 4, book.speed_by_concurrency(node_id, m))

        facts = Facts(model)
        if req is not None:
            body = req.body or {}
            cached = self.affinity.cached(prefixes(model, body), now) if self.affinity and body else {}
            out = expected_output(None, book.model_output(model), self.scorer.cfg.default_output)
            facts = Facts(model, prompt_tokens=req.prompt, output_tokens=out, cached=cached)
        ranked = self.scorer.rank(
            snap,
            facts,
            now=now,
            in_flight=in_flight,
            capacity=capacity,
            latency=book.all,
            latency_version=book.version,
        )
        best = decide(ranked)
        return best.node.node_id if best is not None else None

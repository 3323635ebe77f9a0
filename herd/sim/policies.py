"""Routing policies for the simulator. Each sees what a router would see (a `FleetSnapshot` built from the
nodes' heartbeats, requests in flight per (node, model), latency observations) and returns a node id, or None
to hold the request in the router's FIFO queue for its model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from herd.fleet.state import FleetSnapshot
from herd.routing.capacity import node_capacity
from herd.routing.latency import LatencyBook
from herd.routing.score import Facts, Scorer, ScoringConfig, decide


class Policy(Protocol):
    name: str

    def choose(
        self,
        snap: FleetSnapshot,
        model: str,
        in_flight: Mapping[tuple[str, str], int],
        book: LatencyBook,
        now: float,
    ) -> str | None: ...


def _having(snap: FleetSnapshot, model: str) -> list[str]:
    return sorted(n.node_id for n in snap.nodes.values() if model in n.models)


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
    ) -> str | None:
        nodes = _having(snap, model)
        i = self._next.get(model, 0)
        self._next[model] = i + 1
        return nodes[i % len(nodes)] if nodes else None


class LeastBusy:
    name = "least-busy"

    def choose(
        self,
        snap: FleetSnapshot,
        model: str,
        in_flight: Mapping[tuple[str, str], int],
        book: LatencyBook,
        now: float,
    ) -> str | None:
        def busy(node_id: str) -> int:
            return sum(n for (nid, _), n in in_flight.items() if nid == node_id)

        nodes = _having(snap, model)
        return min(nodes, key=lambda n: (busy(n), n)) if nodes else None


class Herd:
    """The router's own decision: `Scorer.rank` + `decide`, with the router's slot capacities."""

    name = "herd"

    def __init__(self, cfg: ScoringConfig | None = None, name: str = "herd") -> None:
        self.scorer = Scorer(cfg)
        self.name = name

    def choose(
        self,
        snap: FleetSnapshot,
        model: str,
        in_flight: Mapping[tuple[str, str], int],
        book: LatencyBook,
        now: float,
    ) -> str | None:
        def capacity(node_id: str, m: str) -> int:
            return node_capacity(snap.nodes[node_id], 4, book.speed_by_concurrency(node_id, m))

        ranked = self.scorer.rank(
            snap,
            Facts(model),
            now=now,
            in_flight=in_flight,
            capacity=capacity,
            latency=book.all,
            latency_version=book.version,
        )
        best = decide(ranked)
        return best.node.node_id if best is not None else None

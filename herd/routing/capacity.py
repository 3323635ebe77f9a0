"""How many requests per model a node may run at once (pure): its reported parallelism (or the configured
default), cut to where observed throughput stops growing (`latency.effective_parallel`), and to one under memory
pressure so a struggling node is not pushed into swapping. `Slots` asks this through a closure over the live
snapshot and latency book, so a new heartbeat or observation changes capacity without any bookkeeping."""

from __future__ import annotations

from herd.fleet.state import FleetSnapshot, NodeState
from herd.routing.guest import usable_memory
from herd.routing.latency import LatencyBook, effective_parallel

PRESSURE_FRACTION = 0.10  # below this share of memory available, one request at a time


def node_capacity(node: NodeState, default_parallel: int, speeds: dict[int, float] | None = None) -> int:
    hb = node.heartbeat
    parallel = max(1, hb.parallel or default_parallel)
    host = hb.host
    if host.mem_total and usable_memory(hb) / host.mem_total < PRESSURE_FRACTION:
        return 1
    return effective_parallel(speeds, parallel) if speeds else parallel


def capacity_in(
    snap: FleetSnapshot, book: LatencyBook, node_id: str, model: str, default_parallel: int
) -> int:
    node = snap.nodes.get(node_id)
    if node is None:
        return default_parallel
    hb = node.heartbeat
    if hb.host.mem_total and usable_memory(hb) / hb.host.mem_total < PRESSURE_FRACTION:
        return 1
    return book.effective_parallel(node_id, model, max(1, hb.parallel or default_parallel))  # remembered

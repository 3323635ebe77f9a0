"""How many requests per model a node may run at once (pure): its reported parallelism (or the configured
default), cut to one under memory pressure so a struggling node is not pushed into swapping. `Slots` asks
this through a closure over the live snapshot, so a new heartbeat changes capacity without any bookkeeping."""

from __future__ import annotations

from herd.fleet.state import FleetSnapshot, NodeState

PRESSURE_FRACTION = 0.10  # below this share of memory available, one request at a time


def node_capacity(node: NodeState, default_parallel: int) -> int:
    hb = node.heartbeat
    parallel = hb.parallel or default_parallel
    host = hb.host
    if host.mem_total and host.mem_available / host.mem_total < PRESSURE_FRACTION:
        return 1
    return max(1, parallel)


def capacity_in(snap: FleetSnapshot, node_id: str, default_parallel: int) -> int:
    node = snap.nodes.get(node_id)
    return node_capacity(node, default_parallel) if node is not None else default_parallel

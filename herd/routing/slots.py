"""Capacity: requests in flight per (node, model) against what the node can run at once.

`Slots` counts requests in flight per (node, model) against a capacity (the node's reported parallelism, cut
to 1 under memory pressure, and temporarily to "full" when the node answers 503 busy). Because the
release is pushed on the request's exit stack (held by the ASGI layer with `async with` for the whole
response) the moment the slot is reserved, a disconnect, error or cancel always gives it back, and releasing
fires the pulse that wakes the holding queue. Nothing here needs a reaper.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import trio

from herd.routing.pulse import Pulse


class Slots:
    def __init__(self, pulse: Pulse, capacity_of: Callable[[str, str], int]) -> None:
        self.pulse = pulse
        self.capacity = capacity_of
        self._in_flight: dict[tuple[str, str], int] = {}
        self._busy_until: dict[tuple[str, str], float] = {}

    @property
    def in_flight(self) -> Mapping[tuple[str, str], int]:
        return self._in_flight

    def total(self) -> int:
        return sum(self._in_flight.values())

    def node_total(self, node_id: str) -> int:
        return sum(n for (nid, _), n in self._in_flight.items() if nid == node_id)

    def mark_busy(self, node_id: str, model: str, seconds: float) -> None:
        """The node said 503 busy: treat (node, model) as full for a while instead of retrying into it."""
        self._busy_until[(node_id, model)] = trio.current_time() + seconds

    def room(self, node_id: str, model: str) -> int:
        """Capacity as the scorer should see it: 0 while the node is marked busy."""
        until = self._busy_until.get((node_id, model))
        if until is not None and trio.current_time() < until:
            return 0
        return self.capacity(node_id, model)

    def has_room(self, node_id: str, model: str) -> bool:
        key = (node_id, model)
        until = self._busy_until.get(key)
        if until is not None:
            if trio.current_time() < until:
                return False
            del self._busy_until[key]
        return self._in_flight.get(key, 0) < self.capacity(node_id, model)

    def reserve(self, node_id: str, model: str) -> int:
        """Count one more request on (node, model); returns how many now run there."""
        key = (node_id, model)
        count = self._in_flight[key] = self._in_flight.get(key, 0) + 1
        return count

    def release(self, node_id: str, model: str) -> None:
        key = (node_id, model)
        left = self._in_flight[key] - 1
        if left:
            self._in_flight[key] = left
        else:
            del self._in_flight[key]
        self.pulse.fire()

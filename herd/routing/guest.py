"""What the router makes of a node's "good guest" report (pure; wire format in `herd.fleet.guest`): the memory
it may count on, whether the owner has paused it with a meeting, how strained the machine is, and how likely
it is to stay free for a request of a given length. `herd.routing.signals` and `score` call these; formulas
in `docs/routing.md`. Unknown values (`None`) never count against a node."""

from __future__ import annotations

import math

from herd.fleet.guest import SLOTS
from herd.fleet.heartbeat import Heartbeat

THROTTLED = 0.4  # strain factor while the platform reports thermal throttling
ON_BATTERY = 0.6  # strain factor while on battery
OWNER_CPU = 0.5  # strain lost at 100 % owner CPU (linear)
LONG_REQUEST = 60.0  # s: requests expected to run at least this long look ahead at the owner's week


def usable_memory(hb: Heartbeat) -> int:
    """Bytes the router may count on for models: the node's memory ceiling (after the owner's apps) when it
    reports one, never more than what is available; raw available memory otherwise."""
    ceiling = hb.guest.memory_ceiling
    avail = hb.host.mem_available
    return avail if ceiling is None else min(avail, ceiling)


def in_meeting(hb: Heartbeat) -> bool:
    """The node's owner is in a call and asked (--meeting-pause) for no new work meanwhile."""
    owner = hb.guest.owner
    return owner is not None and owner.in_meeting is True


def strain(hb: Heartbeat) -> float:
    """1 for a cool, plugged-in machine whose owner is idle; lower while throttling, on battery, or while the
    owner's own apps take CPU."""
    g = hb.guest
    value = 1.0
    if g.thermal is not None and g.thermal.throttling:
        value *= THROTTLED
    if g.on_battery:
        value *= ON_BATTERY
    if g.owner is not None and g.owner.cpu_percent is not None:
        value *= 1.0 - OWNER_CPU * min(1.0, g.owner.cpu_percent / 100.0)
    return value


def outlook(hb: Heartbeat, duration: float, long_request: float = LONG_REQUEST) -> float:
    """How free the node is likely to stay for a request expected to take `duration` seconds: 1 - the highest
    learned owner load over the hourly slots from now to then. 1 for short requests and for nodes that send no
    learned week (no change in their ranking)."""
    g = hb.guest
    if duration < long_request or g.capacity is None or g.capacity_now is None:
        return 1.0
    start = g.capacity_now
    end = start + min(duration, SLOTS * 3600.0) / 3600.0
    slots = range(math.floor(start), math.floor(end) + 1)
    return 1.0 - max(g.capacity[s % SLOTS] for s in slots)

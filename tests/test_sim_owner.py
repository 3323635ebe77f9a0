"""The good-guest scenario in the simulator: a node whose owner is busy every weekday 9-17 gets less long
work then, first from its live load, then less still from its learned week; outside office hours nothing
changes."""

from __future__ import annotations

from herd.sim.node import SimModel, SimNode, SimRequest
from herd.sim.owner import OfficeHours, learned_week, run_owner


def test_learned_week_from_office_hours() -> None:
    week = learned_week(OfficeHours())
    monday_10, monday_20, saturday_10 = week[10], week[20], week[5 * 24 + 10]
    assert 0.5 < monday_10 < 0.9 and monday_20 < 0.1 and saturday_10 < 0.1


def test_owner_load_slows_generation_minute_by_minute() -> None:
    n = SimNode(
        "n",
        100.0,
        0.0,
        1,
        16,
        1,
        {"a": SimModel("a", 4, 1.0)},
        loaded=["a"],
        owner=lambda t: 0.0 if t < 60 else 1.0,
    )
    req = SimRequest(0, "a", 10_000, 0.0)
    n.running.append(req)
    # 6,000 tokens in the first free minute, then 40 tok/s once the owner is back
    assert n.service_time(req, 0.0) == 60 + 4_000 / 40
    assert n.heartbeat(120.0).guest.owner is not None


def test_owner_node_gets_less_long_work_in_office_hours() -> None:
    plain, live, learned = run_owner(seed=1)
    assert plain.long_in_hours == live.long_in_hours == learned.long_in_hours > 50
    # the time-to-finish estimate already learns that the owner's machine got slower (issue 12); the live
    # owner load never makes it worse, and the learned week keeps long work off it before it slows
    assert learned.share_in_hours < live.share_in_hours <= plain.share_in_hours
    assert learned.share_in_hours < 0.15
    assert learned.share_outside == plain.share_outside  # outside office hours nothing changes
    assert len(learned.long_latencies) == len(plain.long_latencies)

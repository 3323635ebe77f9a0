"""The good-guest report on the router's side: heartbeat parsing (bounded, a bad value is a 400), the memory
ceiling in place of free memory, the meeting pause, the strain and outlook signals, and /fleet/status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from conftest import heartbeat_json
from harness import start_fleet

from herd.errors import BadRequest
from herd.fleet.guest import SLOTS, GuestState
from herd.fleet.heartbeat import parse_heartbeat
from herd.fleet.state import FleetSnapshot, apply_heartbeat
from herd.routing.capacity import node_capacity
from herd.routing.guest import outlook, strain, usable_memory
from herd.routing.latency import LatencyStats
from herd.routing.score import Facts, Scorer, eliminate
from herd.routing.select import pull_target
from herd.routing.signals import ScoringConfig

M = "m:latest"
GB = 2**30

GUEST = {
    "gpu": [{"name": "RTX", "util_percent": 12.5, "mem_used": GB, "mem_total": 24 * GB, "temp_c": 50}],
    "thermal": {"state": "nominal", "throttling": False, "temp_c": 48.0, "cpu_freq_ratio": 0.5},
    "on_battery": False,
    "owner": {"cpu_percent": 10.0, "mem_bytes": 3 * GB, "busy_apps": ["blender"], "in_meeting": False},
    "memory_ceiling": 8 * GB,
    "capacity": [0.0] * SLOTS,
    "capacity_now": 10.5,
}


def beat(name: str, loaded: bool = False, avail: int = 16, **guest: Any) -> dict[str, Any]:
    b = heartbeat_json(name, f"http://{name}:1", [M], [M] if loaded else [])
    b["models"][0]["size"] = 4 * GB
    b["host"] = {"mem_total": 32 * GB, "mem_available": avail * GB, "load": [0, 0, 0]}
    b.update(guest)
    return b


def snap_of(*beats: dict[str, Any]) -> FleetSnapshot:
    snap = FleetSnapshot()
    for b in beats:
        snap = apply_heartbeat(snap, parse_heartbeat(b), 0.0)
    return snap


def test_guest_fields_round_trip_and_default_to_unknown() -> None:
    hb = parse_heartbeat(beat("a", **GUEST))
    assert parse_heartbeat(hb.to_json()) == hb
    assert hb.guest.gpu is not None and hb.guest.gpu[0].util_percent == 12.5
    assert hb.guest.owner is not None and hb.guest.owner.busy_apps == ("blender",)
    bare = parse_heartbeat(beat("b"))
    assert bare.guest == GuestState()
    assert {
        k: bare.to_json()[k] for k in ("gpu", "thermal", "on_battery", "owner", "capacity")
    } == dict.fromkeys(("gpu", "thermal", "on_battery", "owner", "capacity"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("gpu", [{"util_percent": 150}]),
        ("gpu", [{}] * 17),
        ("gpu", {"name": "x"}),
        ("gpu", [{"mem_used": -1}]),
        ("thermal", {"state": "toasty"}),
        ("thermal", {"throttling": "yes"}),
        ("thermal", {"temp_c": float("nan")}),
        ("on_battery", 1),
        ("owner", {"busy_apps": ["x" * 500]}),
        ("owner", {"busy_apps": ["a"] * 33}),
        ("owner", {"cpu_percent": True}),
        ("memory_ceiling", 1.5),
        ("capacity", [0.0] * 167),
        ("capacity", [2.0] * SLOTS),
        ("capacity_now", 200),
    ],
)
def test_bad_guest_values_are_rejected(key: str, value: Any) -> None:
    with pytest.raises(BadRequest) as err:
        parse_heartbeat(beat("a", **{key: value}))
    assert err.value.status == 400


async def test_bad_guest_value_is_a_400_over_http(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, nodes={})
    resp = await fleet.http.post(fleet.url + "/heartbeat", json=beat("a", capacity=[0.5] * 3))
    assert resp.status_code == 400 and "capacity" in resp.text
    resp = await fleet.http.post(
        fleet.url + "/heartbeat", json={**beat("a", **GUEST), "backend_url": "http://127.0.0.1:1"}
    )
    assert resp.status_code == 200
    (node,) = (await fleet.http.get(fleet.url + "/fleet/status")).json()["nodes"]
    assert node["gpu"] == GUEST["gpu"] and node["thermal"] == GUEST["thermal"]
    assert node["on_battery"] is False and node["owner"] == GUEST["owner"]
    assert node["capacity"] == {"week": GUEST["capacity"], "now": 10.5}
    assert node["memory_ceiling"] == 8 * GB


def test_memory_ceiling_replaces_free_memory() -> None:
    hb = parse_heartbeat(beat("a", avail=16, memory_ceiling=2 * GB))
    assert usable_memory(hb) == 2 * GB
    assert usable_memory(parse_heartbeat(beat("a", avail=16))) == 16 * GB
    # a ceiling above what is free is not believed
    assert usable_memory(parse_heartbeat(beat("a", avail=4, memory_ceiling=20 * GB))) == 4 * GB
    # the owner's apps leave this node critically short: no cold loads, one request at a time
    snap = snap_of(beat("busy", avail=16, memory_ceiling=GB // 2), beat("free", avail=10))
    assert eliminate(snap.nodes["busy"], M, ScoringConfig(), frozenset()) == "critical memory pressure"
    assert node_capacity(snap.nodes["busy"], 4) == 1 and node_capacity(snap.nodes["free"], 4) == 4
    # pulls go where the owner leaves the most room, not where the most is free
    snap = snap_of(beat("owner-busy", avail=20, memory_ceiling=3 * GB), beat("quiet", avail=12))
    assert pull_target(snap) is not None and pull_target(snap).node_id == "quiet"  # type: ignore[union-attr]
    ranked = rank(snap)
    assert ranked[0].node.node_id == "quiet" and ranked[0].breakdown["memory"] > ranked[1].breakdown["memory"]


def rank(snap: FleetSnapshot, latency: dict[Any, LatencyStats] | None = None) -> list[Any]:
    return Scorer().rank(
        snap, Facts(M), now=0.0, in_flight={}, capacity=lambda n, m: 1, latency=latency or {}
    )


def test_meeting_pause_takes_the_node_out() -> None:
    owner = {"cpu_percent": 5.0, "mem_bytes": GB, "busy_apps": [], "in_meeting": True}
    snap = snap_of(beat("calling", loaded=True, owner=owner), beat("other"))
    assert eliminate(snap.nodes["calling"], M, ScoringConfig(), frozenset()) == "owner in a meeting"
    assert [c.node.node_id for c in rank(snap)] == ["other"]
    snap = snap_of(beat("calling", loaded=True, owner={**owner, "in_meeting": None}))
    assert eliminate(snap.nodes["calling"], M, ScoringConfig(), frozenset()) is None


@pytest.mark.parametrize(
    "guest",
    [
        {"thermal": {"state": "serious", "throttling": True}},
        {"on_battery": True},
        {"owner": {"cpu_percent": 80.0, "mem_bytes": GB, "busy_apps": []}},
    ],
)
def test_strained_node_scores_lower(guest: dict[str, Any]) -> None:
    snap = snap_of(beat("a-strained", **guest), beat("b-calm", on_battery=False))
    ranked = rank(snap)
    assert [c.node.node_id for c in ranked] == ["b-calm", "a-strained"]
    assert ranked[1].breakdown["strain"] < 1.0 == ranked[0].breakdown["strain"]
    # unknown is not bad: a node that cannot tell scores as a calm one
    assert strain(parse_heartbeat(beat("x", thermal=None, on_battery=None))) == 1.0


def test_outlook_prefers_nodes_likely_to_stay_free_for_long_requests() -> None:
    week = [0.0] * SLOTS
    week[9] = week[10] = 0.9  # Monday 09:00-11:00, the owner is usually busy
    busy = beat("a-owner", capacity=week, capacity_now=8.75)  # Monday 08:45
    free = beat("b-spare", capacity=[0.0] * SLOTS, capacity_now=8.75)
    snap = snap_of(busy, free)
    long = {(n, M): LatencyStats(0.5, 20.0, 1800.0, 20) for n in ("a-owner", "b-spare")}
    short = {(n, M): LatencyStats(0.5, 20.0, 5.0, 20) for n in ("a-owner", "b-spare")}
    assert rank(snap, long)[0].node.node_id == "b-spare"
    assert rank(snap, long)[1].breakdown["outlook"] == pytest.approx(0.1)
    # a short request ends before 09:00: the learned week does not matter, node ids break the tie
    assert rank(snap, short)[0].node.node_id == "a-owner"
    hb = parse_heartbeat(busy)
    assert outlook(hb, 600.0) == 1.0  # 08:45 + 10 min stays in the free hour
    assert outlook(hb, 1200.0) == pytest.approx(0.1)
    # the week wraps: Sunday 23:30 + 1 h reaches Monday 00:00
    wrap = [0.0] * SLOTS
    wrap[0] = 0.5
    assert outlook(parse_heartbeat(beat("w", capacity=wrap, capacity_now=167.5)), 3600.0) == 0.5
    assert outlook(parse_heartbeat(beat("n")), 3600.0) == 1.0


def test_meeting_pause_takes_media_work_away_too() -> None:
    from herd.routing.media import candidates

    media = [{"kind": "image", "model": "img", "url": "http://x:1", "api": "openai"}]
    owner = {"cpu_percent": 5.0, "mem_bytes": GB, "busy_apps": [], "in_meeting": True}
    snap = snap_of(beat("calling", media=media, owner=owner), beat("other", media=media))
    assert [b.node.node_id for b in candidates(snap, "image", None, {})] == ["other"]

"""Fleet transitions, expiry on the autojump clock, catalog merging and selection — pure logic."""

from __future__ import annotations

import pytest
import trio
from conftest import heartbeat_json

from herd.config import FleetConfig
from herd.errors import BadRequest, ModelNotFound, NoNodeAvailable
from herd.fleet import catalog
from herd.fleet.heartbeat import parse_heartbeat
from herd.fleet.registry import Expiry, Registry
from herd.fleet.state import FleetSnapshot, NodeStatus, apply_heartbeat, normalize_model, sweep
from herd.routing.select import no_candidate_error, rank


def hb(node_id: str, models: list[str], loaded: list[str] = (), **extra: object):
    return parse_heartbeat(heartbeat_json(node_id, f"http://{node_id}:11434", models, loaded, **extra))


def test_normalize_model() -> None:
    assert normalize_model("llama3") == "llama3:latest"
    assert normalize_model("llama3:8b") == "llama3:8b"
    assert normalize_model("hf.co/org/model") == "hf.co/org/model:latest"
    assert normalize_model("localhost:5000/m") == "localhost:5000/m:latest"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({}, "node_id"),
        ({"node_id": 3, "backend_url": "http://x"}, "node_id"),
        ({"node_id": "a", "backend_url": "ftp://x"}, "backend_url"),
        ({"node_id": "a", "backend_url": "http://x", "draining": "yes"}, "draining"),
        ({"node_id": "a", "backend_url": "http://x", "models": [{"size": 1}]}, "models"),
        ({"node_id": "a", "backend_url": "http://x", "host": {"load": [1]}}, "host.load"),
        ({"node_id": "a", "backend_url": "http://x", "host": {"mem_total": True}}, "mem_total"),
    ],
)
def test_bad_heartbeats_are_400(body: object, param: str | None) -> None:
    with pytest.raises(BadRequest) as info:
        parse_heartbeat(body)
    assert info.value.status == 400
    assert info.value.param == param


def test_heartbeat_round_trip() -> None:
    beat = hb("a", ["m:1"], ["m:1"])
    assert parse_heartbeat(beat.to_json()) == beat


def test_status_transitions() -> None:
    cfg = FleetConfig(degraded_after=15, offline_after=30)
    snap = apply_heartbeat(FleetSnapshot(), hb("a", ["m"]), now=100.0)
    assert sweep(snap, 110.0, cfg) is snap
    degraded = sweep(snap, 115.0, cfg)
    assert degraded.nodes["a"].status is NodeStatus.DEGRADED
    assert degraded.version == snap.version + 1
    assert sweep(degraded, 130.0, cfg).nodes["a"].status is NodeStatus.OFFLINE
    back = apply_heartbeat(sweep(degraded, 130.0, cfg), hb("a", ["m"]), now=131.0)
    assert back.nodes["a"].status is NodeStatus.ONLINE
    assert back.nodes["a"].first_seen == 100.0


async def test_expiry_task_on_autojump_clock(autojump_clock: trio.testing.MockClock) -> None:
    registry = Registry(FleetConfig(degraded_after=15, offline_after=30, sweep_interval=1))
    registry.ingest(hb("a", ["m"]))
    async with trio.open_nursery() as nursery:
        await nursery.start(Expiry(registry).run)
        await trio.sleep(14.5)
        assert registry.snapshot.nodes["a"].status is NodeStatus.ONLINE
        await trio.sleep(1)
        assert registry.snapshot.nodes["a"].status is NodeStatus.DEGRADED
        registry.ingest(hb("a", ["m"]))
        assert registry.snapshot.nodes["a"].status is NodeStatus.ONLINE
        await trio.sleep(31)
        assert registry.snapshot.nodes["a"].status is NodeStatus.OFFLINE
        nursery.cancel_scope.cancel()


def test_rank_prefers_loaded_then_least_busy() -> None:
    snap = FleetSnapshot()
    for beat in (
        hb("a", ["m:latest"]),
        hb("b", ["m:latest"], ["m:latest"]),
        hb("c", ["m:latest"], ["m:latest"]),
    ):
        snap = apply_heartbeat(snap, beat, 0.0)
    assert [n.node_id for n in rank(snap, "m:latest", {})] == ["b", "c", "a"]
    assert [n.node_id for n in rank(snap, "m:latest", {("b", "m:latest"): 2})] == ["c", "b", "a"]
    assert [n.node_id for n in rank(snap, "m:latest", {}, exclude={"b"})] == ["c", "a"]
    assert rank(snap, "other:latest", {}) == []


def test_rank_skips_unroutable_nodes() -> None:
    snap = FleetSnapshot()
    snap = apply_heartbeat(snap, hb("draining", ["m:latest"], draining=True), 0.0)
    snap = apply_heartbeat(snap, hb("down", ["m:latest"], backend_up=False), 0.0)
    assert rank(snap, "m:latest", {}) == []
    assert isinstance(no_candidate_error(snap, "m:latest", 5), NoNodeAvailable)
    assert isinstance(no_candidate_error(snap, "x:latest", 5), ModelNotFound)


def test_catalog_merges_one_entry_per_model() -> None:
    snap = FleetSnapshot()
    snap = apply_heartbeat(snap, hb("a", ["m:latest", "n:latest"], ["m:latest"]), 0.0)
    snap = apply_heartbeat(snap, hb("b", ["m:latest"], ["m:latest"]), 0.0)
    assert sorted(m["name"] for m in catalog.merged_tags(snap)) == ["m:latest", "n:latest"]
    assert [m["name"] for m in catalog.merged_ps(snap)] == ["m:latest"]
    assert catalog.find_model(snap, "n")["name"] == "n:latest"
    assert catalog.find_model(snap, "zzz") is None


def test_fleet_version_is_the_oldest() -> None:
    snap = FleetSnapshot()
    snap = apply_heartbeat(snap, hb("a", [], backend_version="0.12.10"), 0.0)
    snap = apply_heartbeat(snap, hb("b", [], backend_version="0.12.9"), 0.0)
    assert catalog.fleet_version(snap, "x") == "0.12.9"
    assert catalog.fleet_version(FleetSnapshot(), "x") == "x"


def test_unloaded_models_and_incidents_are_remembered() -> None:
    cfg = FleetConfig(degraded_after=15, offline_after=30)
    snap = apply_heartbeat(FleetSnapshot(), hb("a", ["m:1", "n:1"], ["m:1"]), now=0.0)
    snap = apply_heartbeat(snap, hb("a", ["m:1", "n:1"], ["n:1"]), now=10.0)
    assert dict(snap.nodes["a"].unloaded_at) == {"m:1": 10.0}
    snap = apply_heartbeat(snap, hb("a", ["m:1", "n:1"], ["m:1"]), now=20.0)
    assert dict(snap.nodes["a"].unloaded_at) == {"n:1": 20.0}  # m is hot again
    assert snap.nodes["a"].incidents == ()
    snap = sweep(snap, 40.0, cfg)
    snap = apply_heartbeat(snap, hb("a", ["m:1"], backend_up=False), now=41.0)
    assert snap.nodes["a"].incidents == (40.0, 41.0)
    snap = apply_heartbeat(snap, hb("a", ["m:1"]), now=5000.0)
    assert snap.nodes["a"].incidents == () and dict(snap.nodes["a"].unloaded_at) == {}

"""Health checks: each on small hand-made values, and /fleet/health on a live router."""

from __future__ import annotations

from pathlib import Path

import trio
from conftest import heartbeat_json
from harness import start_fleet

from herd.config import FleetConfig
from herd.fleet.heartbeat import parse_heartbeat
from herd.fleet.state import FleetSnapshot, apply_heartbeat, sweep
from herd.health.base import CHECKS, Facts, run_checks
from herd.routing.record import RequestRecord


def snap_of(*beats: dict) -> FleetSnapshot:
    snap = FleetSnapshot()
    for b in beats:
        snap = apply_heartbeat(snap, parse_heartbeat(b), 0.0)
    return snap


def rec(**kw: object) -> RequestRecord:
    r = RequestRecord(0.0, 0.0, "ollama", "/api/chat", "m", "m:latest", True, node_id="a")
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def found(facts: Facts) -> set[str]:
    return {f["check"] for f in run_checks(facts)}


def test_there_are_at_least_fifteen_checks() -> None:
    run_checks(Facts(FleetSnapshot(), []))
    assert len(CHECKS) >= 15


def test_node_state_checks() -> None:
    low = heartbeat_json(
        "low",
        "http://low:1",
        ["m"],
        host={"mem_total": 100, "mem_available": 5, "disk_free": 2**30, "load": [0, 0, 0]},
    )
    old = heartbeat_json("old", "http://old:1", ["m"], backend_version="0.9.0", agent_version="0.0.1")
    down = heartbeat_json("down", "http://down:1", ["m"], backend_up=False)
    drain = heartbeat_json("drain", "http://drain:1", ["m"], draining=True)
    snap = snap_of(low, old, down, drain)
    facts = Facts(snap, [], broken=frozenset({"old"}), paused=frozenset({"low"}))
    assert {
        "memory_pressure",
        "disk_low",
        "version_mismatch",
        "agent_versions",
        "backend_down",
        "draining",
        "paused",
        "circuit_open",
    } <= found(facts)
    late = Facts(sweep(snap, 20.0, FleetConfig()), [])
    assert "degraded_nodes" in found(late) and "offline_nodes" in found(
        Facts(sweep(snap, 40.0, FleetConfig()), [])
    )
    assert found(Facts(snap_of(heartbeat_json("ok", "http://ok:1", ["m"])), [])) == set()
    mixed = snap_of(
        heartbeat_json("ok", "http://ok:1", ["m"]),
        heartbeat_json("llama", "http://l:1", ["m"], backend="openai", backend_version="b6123"),
    )
    assert "version_mismatch" not in found(Facts(mixed, []))  # a llama.cpp build is not an Ollama version


def test_traffic_checks() -> None:
    snap = snap_of(heartbeat_json("a", "http://a:1", ["m"]), heartbeat_json("b", "http://b:1", ["m"]))
    recent = (
        [rec(status=502, error="boom") for _ in range(5)]
        + [rec(status=499) for _ in range(5)]
        + [rec(status=200, error="backend sent nothing for 300 s") for _ in range(3)]
        + [
            rec(retries=1, queue_wait=2.0, context_protected=True, final={"load_duration": 5e9})
            for _ in range(8)
        ]
    )
    got = found(Facts(snap, recent, queue={"m:latest": 7}))
    assert {
        "error_rate",
        "client_disconnects",
        "stream_timeouts",
        "incomplete_streams",
        "retries",
        "queue_waits",
        "saturation",
        "context_protection",
        "model_thrashing",
        "idle_node",
    } <= got


def test_kv_cache_bloat() -> None:
    beat = heartbeat_json("a", "http://a:1", ["m"], ["m"])
    beat["loaded"][0]["context_length"] = 131072
    facts = Facts(snap_of(beat), [rec(prompt_tokens=100, completion_tokens=200)])
    assert "kv_cache_bloat" in found(facts)


async def test_health_endpoint(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    await fleet.beat("n1", draining=True)
    findings = (await fleet.http.get(fleet.url + "/fleet/health")).json()["findings"]
    assert any(f["check"] == "draining" and f["subject"] == "n1" and f["recommendation"] for f in findings)

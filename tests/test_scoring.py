"""The scorer: elimination reasons, each signal, ordering properties, the memo, and the response headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
from conftest import heartbeat_json
from harness import start_fleet

from herd.config import FleetConfig
from herd.fleet.heartbeat import parse_heartbeat
from herd.fleet.state import FleetSnapshot, apply_heartbeat, sweep
from herd.routing.choice import format_headers
from herd.routing.latency import LatencyStats
from herd.routing.score import Facts, Scorer, ScoringConfig, eliminate

M = "m:latest"
GB = 2**30


def node(
    name: str, *, loaded: bool = False, mem: int = 32, avail: int = 16, size: int = 4, **extra: Any
) -> dict:
    beat = heartbeat_json(name, f"http://{name}:1", [M], [M] if loaded else [], **extra)
    beat["models"][0]["size"] = size * GB
    beat["host"] = {"mem_total": mem * GB, "mem_available": avail * GB, "load": [0, 0, 0]}
    if loaded:
        beat["loaded"][0]["context_length"] = 4096
    return beat


def snap_of(*beats: dict, now: float = 0.0) -> FleetSnapshot:
    snap = FleetSnapshot()
    for b in beats:
        snap = apply_heartbeat(snap, parse_heartbeat(b), now)
    return snap


def rank(
    snap: FleetSnapshot,
    facts: Facts | None = None,
    *,
    in_flight: dict | None = None,
    cap: int = 1,
    latency: dict | None = None,
    **kw: Any,
) -> list:
    return Scorer().rank(
        snap,
        facts or Facts(M),
        now=kw.pop("now", 0.0),
        in_flight=in_flight or {},
        capacity=lambda n, m: cap,
        latency=latency or {},
        **kw,
    )


def test_elimination_reasons() -> None:
    cfg = ScoringConfig()
    snap = snap_of(
        node("ok"),
        node("drain", draining=True),
        node("down", backend_up=False),
        node("huge", size=40),
        node("pressed", avail=0),
        node("pressed-hot", avail=0, loaded=True),
    )
    reasons = {n: eliminate(s, M, cfg, frozenset({"ok"})) for n, s in snap.nodes.items()}
    assert reasons == {
        "ok": "circuit open",
        "drain": "draining",
        "down": "backend down",
        "huge": "does not fit in memory",
        "pressed": "critical memory pressure",
        "pressed-hot": None,
    }
    assert eliminate(snap.nodes["pressed-hot"], "other:latest", cfg, frozenset()) == "model absent"
    old = sweep(snap, 20.0, FleetConfig())
    assert eliminate(old.nodes["ok"], M, cfg, frozenset()) == "degraded"
    assert Scorer().eliminated(snap, M)["huge"] == "does not fit in memory"
    assert [c.node.node_id for c in rank(snap, broken=frozenset({"ok"}))] == ["pressed-hot"]


def test_hot_beats_warm_beats_cold() -> None:
    warm = node("warm", loaded=True)
    snap = snap_of(node("cold"), warm, node("hot", loaded=True))
    snap = apply_heartbeat(snap, parse_heartbeat(node("warm")), 10.0)  # unloaded at t=10
    ranked = rank(snap, now=20.0)
    assert [c.node.node_id for c in ranked] == ["hot", "warm", "cold"]
    assert [c.breakdown["thermal"] for c in ranked] == [1.0, 0.5, 0.0]
    assert rank(snap, now=10.0 + 601)[1].breakdown["thermal"] == 0.0  # warm window over


def test_idle_beats_busy_and_full_goes_last() -> None:
    snap = snap_of(node("a", loaded=True), node("b", loaded=True))
    ranked = rank(snap, in_flight={("a", M): 1}, cap=2)
    assert [c.node.node_id for c in ranked] == ["b", "a"]
    assert ranked[1].breakdown["queue"] == 0.5 and not ranked[1].full
    ranked = rank(snap, in_flight={("a", M): 1, ("b", M): 2}, cap=2)
    assert [(c.node.node_id, c.full) for c in ranked] == [("a", False), ("b", True)]


def test_estimated_wait_uses_p75_latency() -> None:
    snap = snap_of(node("fast", loaded=True), node("slow", loaded=True))
    latency = {("fast", M): LatencyStats(0.1, 50, 2.0, 10), ("slow", M): LatencyStats(0.5, 10, 20.0, 10)}
    ranked = rank(snap, in_flight={("fast", M): 1, ("slow", M): 1}, cap=1, latency=latency)
    assert [c.node.node_id for c in ranked] == ["fast", "slow"]
    # one request ahead (p75 duration) plus this one (no generation rate known: the p75 duration too)
    assert ranked[0].est_wait == 4.0 and ranked[1].est_wait == 40.0
    assert ranked[0].breakdown["wait"] == 1.0 and ranked[1].breakdown["wait"] < 0.2


def test_memory_role_availability_and_context() -> None:
    snap = snap_of(node("roomy", mem=64, avail=60, size=30), node("tight", mem=64, avail=32, size=30))
    a, b = rank(snap)
    assert (a.node.node_id, b.node.node_id) == ("roomy", "tight") and a.breakdown["memory"] > b.breakdown[
        "memory"
    ]
    big = node("big", mem=128, size=2)
    big["models"].append(
        {**big["models"][0], "name": "huge:latest", "model": "huge:latest", "size": 100 * GB}
    )
    small = snap_of(big, node("small", mem=16, size=2))
    by_id = {c.node.node_id: c.breakdown["role"] for c in rank(small)}
    assert by_id["small"] > by_id["big"]  # a small model belongs on the small machine
    flappy = snap_of(node("steady"), node("flappy"))
    flappy = apply_heartbeat(flappy, parse_heartbeat(node("flappy", backend_up=False)), 1.0)
    flappy = apply_heartbeat(flappy, parse_heartbeat(node("flappy")), 2.0)
    by_id = {c.node.node_id: c.breakdown["availability"] for c in rank(flappy, now=3.0)}
    assert by_id == {"steady": 1.0, "flappy": 0.5}
    hot = snap_of(node("h", loaded=True))
    assert rank(hot, Facts(M, num_ctx=2048))[0].breakdown["context"] == 1.0
    assert rank(hot, Facts(M, num_ctx=32768))[0].breakdown["context"] == 0.2


def test_memo_follows_snapshot_and_latency_versions() -> None:
    scorer = Scorer()
    snap = snap_of(node("a"), node("b", loaded=True))
    kw: dict[str, Any] = {"now": 0.0, "in_flight": {}, "capacity": lambda n, m: 1, "latency": {}}
    assert scorer.rank(snap, Facts(M), **kw)[0].node.node_id == "b"
    snap2 = apply_heartbeat(snap, parse_heartbeat(node("b", backend_up=False)), 1.0)
    assert [c.node.node_id for c in scorer.rank(snap2, Facts(M), **kw)] == ["a"]
    latency = {("a", M): LatencyStats(0.1, 10, 1.0, 3)}
    kw["latency"] = latency
    assert scorer.rank(snap2, Facts(M), latency_version=1, **{k: v for k, v in kw.items()})


def test_headers() -> None:
    ranked = rank(snap_of(node("a", loaded=True), node("b")))
    headers = format_headers(ranked)
    assert headers["X-Herd-Score"] == f"{ranked[0].score:.3f}"
    assert headers["X-Herd-Candidates"].startswith("a=") and ",b=" in headers["X-Herd-Candidates"]
    assert format_headers([]) == {}


async def test_score_headers_on_responses(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    resp = await fleet.http.post(fleet.url + "/api/chat", json={"model": "llama3.2:3b", "messages": []})
    assert 0 < float(resp.headers["x-herd-score"]) <= 1
    assert resp.headers["x-herd-candidates"].startswith("n1=")


def test_incremental_index_matches_a_fresh_scorer() -> None:
    """A long-lived scorer fed one heartbeat at a time ranks exactly as a scorer built from scratch."""
    import random

    rng = random.Random(3)
    names = [f"n{i}" for i in range(12)]
    snap = snap_of(*(node(n, loaded=rng.random() < 0.5, mem=rng.choice([16, 32, 64])) for n in names))
    live = Scorer()
    for step in range(200):
        beat = node(
            rng.choice(names),
            loaded=rng.random() < 0.5,
            mem=rng.choice([16, 32, 64, 128]),
            avail=rng.choice([1, 8, 16]),
            size=rng.choice([2, 4, 8]),
            backend_up=rng.random() < 0.9,
        )
        snap = apply_heartbeat(snap, parse_heartbeat(beat), float(step))
        in_flight = {(rng.choice(names), M): rng.randint(0, 3) for _ in range(3)}
        kw: dict[str, Any] = {
            "now": float(step),
            "in_flight": in_flight,
            "capacity": lambda n, m: 2,
            "latency": {},
        }
        got = [(c.node.node_id, round(c.score, 9)) for c in live.rank(snap, Facts(M), **kw)]
        want = [(c.node.node_id, round(c.score, 9)) for c in Scorer().rank(snap, Facts(M), **kw)]
        assert got == want, step


def test_scorer_keeps_no_index_for_names_the_fleet_lacks() -> None:
    """The scorer's per-model index grew by one entry per distinct name callers sent (issue 11)."""
    scorer = Scorer()
    snap = snap_of(node("a"), node("b", loaded=True))
    kw: dict[str, Any] = {"now": 0.0, "in_flight": {}, "capacity": lambda n, m: 1, "latency": {}}
    for i in range(100):
        assert scorer.rank(snap, Facts(f"ghost-{i}:latest"), **kw) == []
    assert scorer.rank(snap, Facts(M), **kw)
    assert list(scorer._index) == [M]

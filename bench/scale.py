"""Scoring at fleet scale: one decision over a 1,000-node x 50-model snapshot.

    .venv/bin/python bench/scale.py [--nodes 1000] [--models 50] [--decisions 2000]

Measures `Scorer.rank` per decision in the router's steady state (the per-snapshot memo warm, a few nodes
busy), and the cold cost of the first decision after a new snapshot. Target: <= 1 ms per decision.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from herd.fleet.heartbeat import Heartbeat, HostStats
from herd.fleet.state import FleetSnapshot, apply_heartbeat
from herd.routing.latency import LatencyStats
from herd.routing.score import Facts, Scorer

GB = 2**30


def build(nodes: int, models: int, rng: random.Random) -> FleetSnapshot:
    names = [f"model{i}:latest" for i in range(models)]
    snap = FleetSnapshot()
    for n in range(nodes):
        entries = tuple(
            {"name": m, "model": m, "size": rng.randint(1, 40) * GB, "details": {"family": "llama"}}
            for m in names
        )
        loaded = tuple(
            {"name": m, "model": m, "size_vram": GB, "context_length": 8192} for m in rng.sample(names, 3)
        )
        hb = Heartbeat(
            node_id=f"node{n:04d}",
            agent_version="bench",
            backend="ollama",
            backend_url=f"http://10.0.{n // 250}.{n % 250}:11434",
            backend_up=True,
            backend_version="0.12.3",
            draining=False,
            interval=5.0,
            host=HostStats(
                cpu_count=16,
                mem_total=rng.choice([16, 32, 64, 128]) * GB,
                mem_available=12 * GB,
                disk_free=500 * GB,
            ),
            models=entries,
            loaded=loaded,
            parallel=4,
        )
        snap = apply_heartbeat(snap, hb, 0.0)
    return snap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(7)
    snap = build(args.nodes, args.models, rng)
    names = [f"model{i}:latest" for i in range(args.models)]
    latency = {
        (f"node{n:04d}", m): LatencyStats(0.2, 30.0, rng.uniform(1, 10), 20)
        for n in range(0, args.nodes, 3)
        for m in names[:10]
    }
    in_flight = {
        (f"node{rng.randrange(args.nodes):04d}", rng.choice(names)): rng.randint(1, 4) for _ in range(200)
    }
    scorer = Scorer()
    kw = {"now": 1.0, "in_flight": in_flight, "capacity": lambda n, m: 4, "latency": latency}

    cold = []
    for m in names:  # the first decision per model after a new snapshot builds the memo
        t0 = time.perf_counter()
        scorer.rank(snap, Facts(m), **kw)
        cold.append(time.perf_counter() - t0)

    def run(churn: bool) -> list[float]:
        nonlocal snap
        times = []
        for i in range(args.decisions):
            if churn:  # a heartbeat lands between two decisions: a new snapshot with one node replaced
                victim = snap.nodes[f"node{rng.randrange(args.nodes):04d}"]
                snap = apply_heartbeat(snap, victim.heartbeat, 1.0)
            t0 = time.perf_counter()
            ranked = scorer.rank(snap, Facts(names[i % len(names)], num_ctx=4096), **kw)
            times.append(time.perf_counter() - t0)
            assert ranked, "no candidate"
        return sorted(times)

    print("| snapshot | case | decisions | p50 µs | p99 µs | max µs |")
    print("|---|---|---:|---:|---:|---:|")
    cases = (
        ("steady: no heartbeat between decisions", False),
        ("churn: a heartbeat before every decision", True),
    )
    for label, churn in cases:
        t = run(churn)
        p50, p99 = statistics.median(t) * 1e6, t[int(0.99 * len(t))] * 1e6
        print(
            f"| {args.nodes} nodes x {args.models} models | {label} | {args.decisions} | {p50:.0f} | {p99:.0f} | "
            f"{t[-1] * 1e6:.0f} |"
        )
    print(f"\nvery first decision per model (empty memo), p50: {statistics.median(cold) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()

"""Scheduling benchmark: one mixed-fleet scenario through round-robin, least-busy and herd's scorer.

    .venv/bin/python bench/routing.py [--seeds 3]
    .venv/bin/python bench/routing.py --owner [--seeds 3]   # the good-guest scenario (herd.sim.owner)

Prints p50/p99 latency (arrival to last token, virtual seconds), cold loads and failures per policy, the
ratio of herd's p99 to the better baseline's (target <= 0.7, with 0 failures), and writes JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from herd.sim.policies import Herd, LeastBusy, RoundRobin  # noqa: E402
from herd.sim.run import MIXED, simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--owner", action="store_true", help="the owner-at-work scenario instead")
    args = parser.parse_args()
    if args.owner:
        owner_main(args.seeds)
        return
    print(f"scenario: {MIXED.name}; {MIXED.rate} req/s for {MIXED.duration:.0f} s, seeds 1..{args.seeds}\n")
    print("| seed | policy | requests | p50 s | p99 s | cold loads | failures |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    rows = []
    for seed in range(1, args.seeds + 1):
        scenario = replace(MIXED, seed=seed)
        results = {}
        for policy in (RoundRobin(), LeastBusy(), Herd()):
            t0 = time.perf_counter()
            r = simulate(scenario, policy)
            results[r.policy] = r
            rows.append(
                {
                    "seed": seed,
                    "policy": r.policy,
                    "requests": r.requests,
                    "p50": r.pct(0.5),
                    "p99": r.pct(0.99),
                    "cold_loads": r.cold_loads,
                    "failures": r.failures,
                    "cpu_s": time.perf_counter() - t0,
                }
            )
            print(
                f"| {seed} | {r.policy} | {r.requests} | {r.pct(0.5):.1f} | {r.pct(0.99):.1f} | {r.cold_loads} | "
                f"{r.failures} |"
            )
        best = min(results["round-robin"].pct(0.99), results["least-busy"].pct(0.99))
        ratio = results["herd"].pct(0.99) / best
        rows[-1]["p99_ratio_vs_best_baseline"] = ratio
        print(f"| {seed} | **herd p99 / better baseline p99** | | | **{ratio:.2f}** | | |")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"routing-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(rows, indent=2))
    print(f"\nJSON: {path}")


def owner_main(seeds: int) -> None:
    from herd.sim.owner import OWNER, pct, run_owner

    print(f"scenario: {OWNER.name}; {OWNER.rate} req/s, seeds 1..{seeds}\n")
    print(
        "| seed | policy | long reqs 9-17 | on owner's node 9-17 | on owner's node outside | long p50 s | "
        "long p99 s | short p50 s | short p99 s |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for seed in range(1, seeds + 1):
        for f in run_owner(seed):
            row = {
                "seed": seed,
                "policy": f.policy,
                "long_in_hours": f.long_in_hours,
                "owner_share_in_hours": f.share_in_hours,
                "owner_share_outside": f.share_outside,
                "long_p50": pct(f.long_latencies, 0.5),
                "long_p99": pct(f.long_latencies, 0.99),
                "short_p50": pct(f.short_latencies, 0.5),
                "short_p99": pct(f.short_latencies, 0.99),
            }
            rows.append(row)
            print(
                f"| {seed} | {f.policy} | {f.long_in_hours} | {f.share_in_hours:.0%} | {f.share_outside:.0%} | "
                f"{row['long_p50']:.0f} | {row['long_p99']:.0f} | {row['short_p50']:.1f} | {row['short_p99']:.1f} |"
            )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"routing-owner-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(rows, indent=2))
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()

"""Scheduling benchmark in virtual time (`herd.sim`): routing policies over several seeds, ratios in one run.

    .venv/bin/python bench/routing.py [--seeds 3]     (or: python3 tasks.py bench-routing)
    .venv/bin/python bench/routing.py --owner [--seeds 3]   # the good-guest scenario (herd.sim.owner)

Scenarios (`herd.sim.run.MIXED`, `herd.sim.scenarios`) and targets:
- mixed fleet (the earlier scenario): herd's p99 <= 0.7 x the better of round-robin / least-busy, 0 failures;
- (a) heterogeneous speeds 1x/2x/4x, 1 and 2 clients: herd's p50 <= 1.1 x the oracle (fastest free node);
- (b) multi-turn chats: herd's time-to-first-token p50 <= 0.5 x least-busy;
- (c) one app floods: the light app's p99 wait <= 2 x its p50 service time under herd (fair share), the
  flood's throughput >= 0.9 x herd with a FIFO queue.
Prints markdown tables and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from herd.sim.policies import Herd, LeastBusy, LeastBusyHot, Oracle, Policy, RoundRobin  # noqa: E402
from herd.sim.run import MIXED, Result, Scenario, simulate  # noqa: E402
from herd.sim.scenarios import FLOOD, MULTITURN, hetero  # noqa: E402


def baselines() -> list[Policy]:
    return [RoundRobin(), LeastBusy(), LeastBusyHot()]


def run(
    scenario: Scenario, policy: Policy, seed: int, rows: list[dict[str, Any]], *, fair: bool = False
) -> Result:
    t0 = time.perf_counter()
    r = simulate(replace(scenario, seed=seed), policy, fair=fair)
    ttft = r.ttfts()
    rows.append(
        {
            "scenario": scenario.name,
            "seed": seed,
            "policy": r.policy + (" (fair share)" if fair else ""),
            "requests": r.requests,
            "p50": r.pct(0.5),
            "p99": r.pct(0.99),
            "ttft_p50": r.pct(0.5, ttft),
            "ttft_p99": r.pct(0.99, ttft),
            "cold_loads": r.cold_loads,
            "failures": r.failures,
            "cpu_s": time.perf_counter() - t0,
        }
    )
    return r


def table(rows: list[dict[str, Any]], cols: list[str]) -> None:
    print("| seed | policy | " + " | ".join(cols) + " |")
    print("|---:|---|" + "---:|" * len(cols))
    for row in rows:
        cells = [f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in cols]
        print(f"| {row['seed']} | {row['policy']} | " + " | ".join(cells) + " |")


def mixed(seeds: list[int], out: list[dict[str, Any]]) -> None:
    print(f"\n### {MIXED.name}; {MIXED.rate} req/s for {MIXED.duration:.0f} s\n")
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        results = {p.name: run(MIXED, p, seed, rows) for p in [*baselines(), Herd()]}
        best = min(results["round-robin"].pct(0.99), results["least-busy"].pct(0.99))
        rows[-1]["p99_ratio_vs_best_baseline"] = results["herd"].pct(0.99) / best
    table(rows, ["requests", "p50", "p99", "cold_loads", "failures"])
    ratios = [r["p99_ratio_vs_best_baseline"] for r in rows if "p99_ratio_vs_best_baseline" in r]
    print(
        f"\nherd p99 / better baseline p99 per seed: {', '.join(f'{x:.2f}' for x in ratios)} (target <= 0.7)"
    )
    out.extend(rows)


def speeds(seeds: list[int], out: list[dict[str, Any]]) -> None:
    for clients in (1, 2):
        scenario = hetero(clients)
        print(f"\n### {scenario.name}\n")
        rows: list[dict[str, Any]] = []
        ratios = []
        for seed in seeds:
            results = {p.name: run(scenario, p, seed, rows) for p in [*baselines(), Oracle(), Herd()]}
            ratios.append(results["herd"].pct(0.5) / results["oracle"].pct(0.5))
            rows[-1]["p50_ratio_vs_oracle"] = ratios[-1]
        table(rows, ["requests", "p50", "p99", "failures"])
        print(f"\nherd p50 / oracle p50 per seed: {', '.join(f'{x:.3f}' for x in ratios)} (target <= 1.1)")
        out.extend(rows)


def chats(seeds: list[int], out: list[dict[str, Any]]) -> None:
    print(f"\n### {MULTITURN.name}\n")
    rows: list[dict[str, Any]] = []
    ratios = []
    for seed in seeds:
        policies = [*baselines(), Herd(affinity=False, name="herd, affinity off"), Herd()]
        results = {p.name: run(MULTITURN, p, seed, rows) for p in policies}
        ratios.append(
            results["herd"].pct(0.5, results["herd"].ttfts())
            / results["least-busy"].pct(0.5, results["least-busy"].ttfts())
        )
        rows[-1]["ttft_p50_ratio_vs_least_busy"] = ratios[-1]
    table(rows, ["requests", "ttft_p50", "ttft_p99", "p50", "p99"])
    print(
        f"\nherd TTFT p50 / least-busy TTFT p50 per seed: {', '.join(f'{x:.3f}' for x in ratios)} (target <= 0.5)"
    )
    out.extend(rows)


def flood(seeds: list[int], out: list[dict[str, Any]]) -> None:
    print(f"\n### {FLOOD.name}\n")
    rows: list[dict[str, Any]] = []
    summary = []
    for seed in seeds:
        results = {p.name: run(FLOOD, p, seed, rows) for p in baselines()}
        fifo = run(FLOOD, Herd(name="herd, FIFO queue"), seed, rows)
        fair = run(FLOOD, Herd(), seed, rows, fair=True)
        for (name, r), row in zip([*results.items(), ("fifo", fifo), ("fair", fair)], rows[-5:], strict=True):
            del name
            service = [
                q.finish - q.start for q in r.done if q.app == "light" and q.finish and q.start is not None
            ]
            row["light_wait_p99"] = r.pct(0.99, r.waits("light"))
            row["light_service_p50"] = r.pct(0.5, service)
            row["flood_throughput"] = sum(1 for q in r.done if q.app == "flood") / r.makespan("flood")
        row = rows[-1]
        wait_ratio = row["light_wait_p99"] / row["light_service_p50"]
        tput_ratio = row["flood_throughput"] / rows[-2]["flood_throughput"]
        row["light_wait_p99_over_service"], row["flood_throughput_vs_fifo"] = wait_ratio, tput_ratio
        summary.append((wait_ratio, tput_ratio))
    table(rows, ["requests", "light_wait_p99", "light_service_p50", "flood_throughput", "failures"])
    print(
        "\nherd (fair share): light p99 wait / its service time, flood throughput / FIFO per seed: "
        + ", ".join(f"{w:.2f} / {t:.3f}" for w, t in summary)
        + " (targets <= 2, >= 0.9)"
    )
    out.extend(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--owner", action="store_true", help="the owner-at-work scenario instead")
    args = parser.parse_args()
    if args.owner:
        owner_main(args.seeds)
        return
    seeds = list(range(1, args.seeds + 1))
    rows: list[dict[str, Any]] = []
    for part in (mixed, speeds, chats, flood):
        part(seeds, rows)
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

"""Resilience bench (issue 11): a node failing 30 % of requests, and a router SIGKILLed under load.

    .venv/bin/python bench/resilience.py [--seconds 60] [--clients 4] [--skip-outlier] [--skip-restart]
        [--skip-slowloris]

A real `herd run` and real `herd node` agents (subprocesses) in front of three fake Ollama nodes served by this
process (`tests/fake_ollama.py`), driven by a few client loops mixing non-streamed Ollama and OpenAI chats
and streamed Ollama chats.

1. Outlier: node `a` fails 30 % of its requests, as HTTP 500 (run 1) or by cutting the stream before its
   first content, or a non-streamed reply midway (run 2). Reported: the share of all upstream requests that
   went to `a` in each 10 s window (a healthy node's share alongside, the baseline of the same run), and the
   client-visible failures by kind.
2. Restart: while clients run, the router is SIGKILLed and started again on the same port and data dir, with
   its remembered fleet (warm) and, as the baseline in the same run, without it (`fleet.json` removed: a cold
   start). Reported: the statuses clients saw in the first 30 s after the restart and the time from the
   router answering again until every node is back and requests succeed.
3. Slowloris: `herd run` limited to 1,024 open files, 1,500 connections trickling their request heads (a
   header line every 2 s), and a normal client asking `/api/version` 20 times meanwhile; herd as configured,
   and as the baseline in the same run with the guard out of the way (`--max-connections 100000
   --header-timeout 75`, what hypercorn alone gives: the keep-alive timeout for heads, no budget).

Prints markdown tables and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleet_stack import Stack, fleet, load  # noqa: E402
from bench.slowloris import slowloris_run  # noqa: E402


async def outlier_run(tmp: Path, mode: str, seconds: float, clients: int) -> dict[str, Any]:
    fakes = fleet(0.005)
    bad = fakes["a"]
    bad.flaky, bad.flaky_mode = 0.3, "500" if mode == "500" else "cut"
    bad.rng.seed(11)
    stack = Stack(tmp, fakes)
    async with trio.open_nursery() as nursery:
        for fake in fakes.values():
            await nursery.start(fake.run)
        try:
            stack.start_router()
            stack.start_agents()
            async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
                await stack.wait_nodes(http)
                windows: list[dict[str, int]] = []
                log: list[tuple[float, str, str]] = []

                async def sample() -> None:
                    while True:
                        await trio.sleep(10)
                        windows.append({n: len(f.requests) for n, f in fakes.items()})

                t0 = trio.current_time()
                before = {n: len(f.requests) for n, f in fakes.items()}
                async with trio.open_nursery() as inner:
                    inner.start_soon(sample)
                    if mode == "cut":  # streams cut before content; non-streamed replies cut midway

                        async def alternate() -> None:
                            while True:
                                bad.flaky_cut_after = 0
                                await trio.sleep(0.5)
                                bad.flaky_cut_after = 2
                                await trio.sleep(0.5)

                        inner.start_soon(alternate)
                    await load(http, stack.url, clients, seconds, log)
                    inner.cancel_scope.cancel()
                status = (await http.get(stack.url + "/fleet/status")).json()
        finally:
            stack.stop()
            nursery.cancel_scope.cancel()
    shares = []
    prev = before
    for w in windows:
        sent = {n: w[n] - prev[n] for n in w}
        total = sum(sent.values()) or 1
        shares.append({n: round(100 * v / total, 1) for n, v in sent.items()})
        prev = w
    outcomes = Counter((kind, outcome) for _, kind, outcome in log)
    return {
        "mode": mode,
        "seconds": seconds,
        "requests": len(log),
        "rate": round(len(log) / (log[-1][0] - t0), 1) if log else 0,
        "bad_node_failures_injected": bad.failed,
        "share_by_10s_window": shares,
        "outcomes": {f"{k}/{o}": v for (k, o), v in sorted(outcomes.items())},
        "outlier_state_at_end": next(n["outlier"] for n in status["nodes"] if n["node_id"] == "a"),
    }


async def restart_run(tmp: Path, warm: bool, clients: int) -> dict[str, Any]:
    fakes = fleet(0.005)
    stack = Stack(tmp, fakes)
    async with trio.open_nursery() as nursery:
        for fake in fakes.values():
            await nursery.start(fake.run)
        try:
            stack.start_router()
            stack.start_agents()
            async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
                await stack.wait_nodes(http)
                await trio.sleep(3)  # the memory writes the fleet within a second
                log: list[tuple[float, str, str]] = []
                async with trio.open_nursery() as inner:
                    inner.start_soon(load, http, stack.url, clients, 10.0, log)
                    await trio.sleep(5)
                    stack.kill_router()
                    killed = trio.current_time()
                    if not warm:
                        (tmp / "router" / "fleet.json").unlink(missing_ok=True)
                    stack.start_router()
                    restarted = trio.current_time()
                    with trio.fail_after(30):
                        while True:
                            try:
                                await http.get(stack.url + "/api/version")
                                break
                            except httpx.HTTPError:
                                await trio.sleep(0.02)
                    answering = trio.current_time()
                    after: list[tuple[float, str, str]] = []
                    inner.start_soon(load, http, stack.url, clients, 30.0, after)
                    while await stack.nodes_online(http) < len(fakes):  # noqa: ASYNC110 (another process)
                        await trio.sleep(0.05)
                    all_back = trio.current_time()
                first_ok = next((t for t, _, o in after if o == "ok"), None)
        finally:
            stack.stop()
            nursery.cancel_scope.cancel()
    statuses = Counter(o for _, _, o in after)
    gap = Counter(o for t, _, o in log if killed <= t < answering)
    return {
        "outcomes_while_down": dict(gap),
        "warm": warm,
        "router_answering_after_restart_s": round(answering - restarted, 2),
        "all_nodes_back_after_answering_s": round(all_back - answering, 2),
        "first_success_after_answering_s": round(first_ok - answering, 2) if first_ok else None,
        "requests_in_first_30s": len(after),
        "statuses_in_first_30s": dict(statuses),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"outlier": [], "restart": [], "slowloris": []}
    with tempfile.TemporaryDirectory(prefix="herd-resilience-") as tmp_name:
        tmp = Path(tmp_name)
        if not args.skip_outlier:
            for mode in ("500", "cut"):
                (tmp / mode).mkdir()
                results["outlier"].append(await outlier_run(tmp / mode, mode, args.seconds, args.clients))
        if not args.skip_restart:
            for warm in (True, False):
                d = tmp / f"restart-{warm}"
                d.mkdir()
                results["restart"].append(await restart_run(d, warm, args.clients))
        if not args.skip_slowloris:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
            for guarded in (True, False):
                d = tmp / f"slowloris-{guarded}"
                d.mkdir()
                results["slowloris"].append(await slowloris_run(d, guarded, 1500))
    return results


def report(results: dict[str, Any]) -> None:
    for run in results["outlier"]:
        print(f"\n### node a fails 30 % ({run['mode']}), {run['requests']} requests at {run['rate']}/s\n")
        print("| window | a (failing) | b | c |\n|---|---:|---:|---:|")
        for i, w in enumerate(run["share_by_10s_window"]):
            print(f"| {10 * i}-{10 * (i + 1)} s | {w['a']} % | {w['b']} % | {w['c']} % |")
        print("\nclient outcomes:", run["outcomes"])
    for run in results["restart"]:
        print(f"\n### restart, {'warm (remembered fleet)' if run['warm'] else 'cold (fleet.json removed)'}\n")
        for k, v in run.items():
            print(f"- {k}: {v}")
    for run in results["slowloris"]:
        print(f"\n### slowloris, {'herd' if run['guarded'] else 'baseline: no budget, 75 s for heads'}\n")
        for k, v in run.items():
            print(f"- {k}: {v}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each outlier run")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client loops")
    parser.add_argument("--skip-outlier", action="store_true")
    parser.add_argument("--skip-restart", action="store_true")
    parser.add_argument("--skip-slowloris", action="store_true")
    args = parser.parse_args()
    started = time.time()
    results = trio.run(main_async, args)
    report(results)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"resilience-{int(started)}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()

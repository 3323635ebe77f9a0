"""Hardening bench: fuzzed requests across every route, then a flood of distinct bad model names, against a
`herd run` process (so its RSS and data dir are its own) in front of the fake fleet of `tests/fuzzing.py`.

    .venv/bin/python bench/fuzz.py [--requests 20000] [--seed 11] [--names 10000]

1. `--requests` fuzzed requests (hypothesis strategies of tests/fuzzing.py, one per example): count of each
   status, of 500s and of answers with another problem (an error without a JSON body, a 5xx other than 502-504).
2. RSS, data-dir size and metric series of the router before and after each of `--batches` batches of
   `--names` distinct bad model names sent to /api/chat (each 100th one a 1 MB name, the rest a mix of unknown
   200-character names and names with NUL/surrogates), to show where growth stops.

Prints a markdown table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from fuzzing import DISCONNECTS, Req, fuzz_fleet, problem, run  # noqa: E402

from bench.proxy import free_port, wait_http  # noqa: E402


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def bad_names(batch: int, n: int) -> list[str]:
    out = []
    for i in range(n):
        tag = f"{batch}-{i}"
        if i % 100 == 0:
            out.append(f"huge-{tag}-" + "m" * 1_000_000)  # 400: longer than 256
        elif i % 3 == 0:
            out.append(f"bad\x00{tag}\ud800")  # 400: NUL, lone surrogate
        else:
            out.append(f"unknown-{tag}-" + "u" * 180)  # valid, unknown: 404, recorded as "(unknown)"
    return out


def flood(client: httpx.Client, url: str, names: list[str]) -> dict[int, int]:
    statuses: dict[int, int] = {}
    for name in names:
        body = json.dumps({"model": name, "messages": [{"role": "user", "content": "hi"}], "stream": False})
        status = client.post(url + "/api/chat", content=body).status_code
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def sample(proc: psutil.Process, data_dir: Path, client: httpx.Client, url: str) -> dict[str, Any]:
    time.sleep(1.0)  # the trace writer flushes every 0.5 s
    metrics = client.get(url + "/metrics").text
    return {
        "rss_mb": round(proc.memory_info().rss / 2**20, 1),
        "data_dir_mb": round(dir_bytes(data_dir) / 2**20, 2),
        "metric_series": sum(1 for line in metrics.splitlines() if line and not line.startswith("#")),
    }


async def with_fakes(
    args: argparse.Namespace, url: str, proc: psutil.Process, data_dir: Path
) -> dict[str, Any]:
    """The fake fleet, registered and kept fresh, while the blocking part runs in a worker thread."""
    async with trio.open_nursery() as nursery, httpx.AsyncClient(trust_env=False) as http:
        fakes = fuzz_fleet()
        await fakes.start(nursery)
        await fakes.beat(http, url)

        async def keep_beating() -> None:
            while True:
                await trio.sleep(5)
                await fakes.beat(http, url)

        nursery.start_soon(keep_beating)
        result = await trio.to_thread.run_sync(lambda: blocking(args, url, fakes.ollama.url, proc, data_dir))
        nursery.cancel_scope.cancel()
    return result


def main(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="herd-fuzz-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = data_dir / "router.log"
    cmd = [sys.executable, "-m", "herd", "run", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--no-local-node", "--no-mdns"]
    with log.open("wb") as out:
        router = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(url + "/api/version", router, log)
        return trio.run(with_fakes, args, url, psutil.Process(router.pid), data_dir)
    finally:
        router.terminate()
        router.wait(10)


def blocking(
    args: argparse.Namespace, url: str, node_url: str, proc: psutil.Process, data_dir: Path
) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    problems: list[str] = []

    previous: list[str] = [""]
    disconnects: list[str] = []

    def on_answer(req: Req, resp: httpx.Response) -> None:
        if DISCONNECTS and DISCONNECTS[-1] == repr(req) and len(disconnects) < len(DISCONNECTS):
            disconnects.append(f"{req!r} after {previous[0]}"[:600])
        previous[0] = f"{req!r} -> {resp.status_code} {resp.headers.get('connection')}"
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        found = problem(req, resp)
        if found is not None and len(problems) < 20:
            problems.append(f"{req!r} -> {found}")

    started = time.perf_counter()
    run(url, node_url, args.requests, on_answer, seed=args.seed)
    fuzz_s = time.perf_counter() - started
    with httpx.Client(trust_env=False, timeout=60) as client:
        unexpected = [
            line
            for line in client.get(url + "/metrics").text.splitlines()
            if line.startswith("herd_unexpected")
        ]
        samples = [sample(proc, data_dir, client, url)]
        batches = []
        for batch in range(1, args.batches + 1):
            batches.append(flood(client, url, bad_names(batch, args.names)))
            samples.append(sample(proc, data_dir, client, url))
    return {
        "machine": f"{platform.machine()} {psutil.cpu_count()} cpu, Python {platform.python_version()}",
        "fuzz": {
            "requests": sum(statuses.values()),
            "seconds": round(fuzz_s, 1),
            "statuses": dict(sorted(statuses.items())),
            "status_500": statuses.get(500, 0),
            "problems": problems,
            "disconnects": disconnects,
            "unexpected_metric": unexpected,
        },
        "names": {"per_batch": args.names, "statuses": batches, "samples": samples},
    }


def report(r: dict[str, Any]) -> None:
    f, n = r["fuzz"], r["names"]
    print(f"\n{r['machine']}\n")
    print(f"Fuzzed requests: {f['requests']} in {f['seconds']} s; statuses {f['statuses']}")
    print(f"500s: {f['status_500']}; other problems: {len(f['problems'])}; {f['unexpected_metric']}")
    for p in f["problems"]:
        print("  ", p[:300])
    print(f"connections the router closed under a request (retried once): {len(f['disconnects'])}")
    for d in f["disconnects"][:5]:
        print("  ", d)
    print("\n| after | RSS MB | data dir MB | metric series |\n|---|---|---|---|")
    for i, s in enumerate(n["samples"]):
        label = f"+{i * n['per_batch']:,} bad names" if i else "start (after the fuzz run)"
        print(f"| {label} | {s['rss_mb']} | {s['data_dir_mb']} | {s['metric_series']} |")
    print(f"\nstatuses per batch: {n['statuses']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bench/fuzz.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--names", type=int, default=10_000, help="distinct bad model names per batch")
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    result = main(args)
    report(result)
    out = ROOT / "bench" / "results" / f"fuzz-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")

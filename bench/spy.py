"""Where the router's CPU goes per request, sampled (py-spy, low overhead) rather than traced (cProfile, which
inflates call-heavy code ten-fold): the bench's fake node and router, one load, the samples cut into the
request's stages by `bench.budget.spy_budget`.

    .venv/bin/python -m bench.spy [--requests 4000] [--concurrency 16] [--stream]   # needs `pip install py-spy`

Prints the table (share of the router's busy samples per stage, and µs per request when scaled to the router's
measured CPU per request in the same run) and keeps the raw stacks in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.budget import spy_budget  # noqa: E402
from bench.loadgen import Conn, run_round  # noqa: E402
from bench.proxy import MESSAGES, MODEL, cpu_seconds, heartbeats, host_port, processes  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.spy", description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stream", action="store_true", help="a streamed reply of 100 chunks instead")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between the node's chunks")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    body: dict[str, object] = {"model": MODEL, "messages": MESSAGES, "stream": args.stream}
    if not args.stream:
        body["options"] = {"num_predict": 5}
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / f"spy-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    with (
        tempfile.TemporaryDirectory(prefix="herd-spy-") as tmp,
        processes(Path(tmp), 100 if args.stream else 5, args.chunk_delay, None) as procs,
        heartbeats(procs["router"][1], procs["direct"][1]),
    ):
        router = procs["router"][0]
        conns = [Conn(*host_port(procs["router"][1])) for _ in range(args.concurrency)]
        run_round(
            conns, "/api/chat", json.dumps(body).encode(), 2 * args.concurrency, b'"done":true'
        )  # warm up
        recorder = subprocess.Popen(
            [spy, "record", "-p", str(router.pid), "-r", "500", "-f", "raw", "-o", str(raw), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # py-spy attaches
        cpu0 = cpu_seconds(router)
        res = run_round(conns, "/api/chat", json.dumps(body).encode(), args.requests, b'"done":true')
        cpu = (cpu_seconds(router) - cpu0) * 1000 / max(len(res.samples), 1)
        recorder.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        recorder.wait()
        for c in conns:
            c.close()
    counts = spy_budget(raw)
    total = sum(counts.values()) or 1
    print(f"router CPU {cpu:.3f} ms/request over {len(res.samples)} requests; {total} busy samples; {raw}")
    print("| stage | share | µs/req |\n|---|---:|---:|")
    for stage, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"| {stage} | {n / total:.1%} | {n / total * cpu * 1000:.0f} |")


if __name__ == "__main__":
    main()

"""Router overhead bench: herd's router against a direct connection to the same fake Ollama node and against
the floor, a bare pass-through on the same stack (`bench/bare.py`), in one run.

    .venv/bin/python bench/proxy.py [--requests 300] [--rounds 6] [--concurrency 1 16] [--stream-chunks 100]

Starts a fake node (`bench/fake_node.py`), the bare pass-through and `herd run` as subprocesses (so CPU is
attributable), registers the node with heartbeats, then runs rounds of direct / bare / router in a rotating
order per case: small non-stream /api/chat at each concurrency, a streamed /api/chat at 16 clients (time to last
byte), and, against a second node that paces its chunks, a paced stream (time to first token, CPU per chunk).
Prints markdown tables (herd's ratios to the floor among them) and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import Conn, RoundResult, run_round  # noqa: E402
from bench.report import floor_table, percentile, print_profile, summarize, table  # noqa: E402

MODEL = "llama3.2:3b"
MESSAGES = [{"role": "user", "content": "Say hello."}]


@dataclass(frozen=True)
class Case:
    name: str
    concurrency: int
    body: bytes
    check: bytes
    requests: int
    rounds: int
    chunks: int = 1  # body chunks per reply (CPU per chunk = CPU per request / chunks)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def thread_seconds(proc: psutil.Process) -> float:
    """CPU of the process's threads other than the main one (worker threads: SQLite writes, ...)."""
    return float(sum(t.user_time + t.system_time for t in proc.threads() if t.id != proc.pid))


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{proc.args!r} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if http.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def _start(cmd: list[str], log: Path, cwd: Path, procs: list[subprocess.Popen[bytes]]) -> str:
    """Start a child that prints its URL as its first stdout line; return the URL."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=out)
    procs.append(proc)
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    if not url:
        raise SystemExit(f"{cmd!r} failed:\n{log.read_text()[-3000:]}")
    return url


@contextmanager
def processes(
    tmp: Path, stream_chunks: int, chunk_delay: float, profile: Path | None
) -> Iterator[dict[str, tuple[psutil.Process, str]]]:
    """The fake node, the bare pass-through to it and the router, started and stopped with SIGTERM:
    {"direct": (fake process, url), "bare": ..., "router": ...}."""
    fake_cmd = [sys.executable, "-m", "bench.fake_node", "--model", MODEL]
    fake_cmd += ["--num-chunks", str(max(stream_chunks, 5)), "--chunk-delay", str(chunk_delay)]
    port = free_port()
    herd = Path(sys.executable).parent / "herd"
    router_cmd = [sys.executable, "-m", "cProfile", "-o", str(profile), str(herd)] if profile else [str(herd)]
    router_cmd += ["--log-level", "warning", "run", "--host", "127.0.0.1", "--port", str(port)]
    router_cmd += ["--no-local-node", "--no-mdns", "--data-dir", str(tmp / "data")]
    router_log = tmp / "router.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        fake_url = _start(fake_cmd, tmp / "fake.log", ROOT, procs)
        bare_url = _start(
            [sys.executable, "-m", "bench.bare", "--upstream", fake_url], tmp / "bare.log", ROOT, procs
        )
        with router_log.open("wb") as rlog:
            router = subprocess.Popen(router_cmd, cwd=tmp, stdout=rlog, stderr=rlog)
        procs.append(router)
        router_url = f"http://127.0.0.1:{port}"
        wait_http(router_url + "/api/version", router, router_log)
        yield {
            "direct": (psutil.Process(procs[0].pid), fake_url),
            "bare": (psutil.Process(procs[1].pid), bare_url),
            "router": (psutil.Process(router.pid), router_url),
        }
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def heartbeat(http: httpx.Client, router: str, fake: str) -> None:
    """What `herd node` would send for the fake node (herd/fleet/heartbeat.py)."""
    body: dict[str, Any] = {
        "node_id": "bench-fake",
        "agent_version": "bench",
        "backend": "ollama",
        "backend_url": fake,
    }
    body |= {"backend_up": True, "backend_version": http.get(fake + "/api/version").json()["version"]}
    body |= {"draining": False, "interval": 2.0, "host": {"cpu_count": psutil.cpu_count() or 1}}
    # room for every client at once: the bench measures herd's overhead, not its holding queue
    body |= {"parallel": 64}
    body |= {"models": http.get(fake + "/api/tags").json()["models"]}
    body |= {"loaded": http.get(fake + "/api/ps").json()["models"]}
    http.post(router + "/heartbeat", content=json.dumps(body)).raise_for_status()


@contextmanager
def heartbeats(router: str, fake: str) -> Iterator[None]:
    stop = threading.Event()
    http = httpx.Client(trust_env=False, timeout=5)

    def loop() -> None:
        while not stop.wait(2.0):
            try:
                heartbeat(http, router, fake)
            except httpx.HTTPError as err:
                print(f"heartbeat failed: {err}", file=sys.stderr)

    heartbeat(http, router, fake)
    deadline = time.monotonic() + 10
    while not any(n["status"] == "online" for n in http.get(router + "/fleet/status").json()["nodes"]):
        if time.monotonic() > deadline:
            raise SystemExit("the router never showed the fake node online")
        time.sleep(0.05)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        http.close()


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


TARGETS = ("direct", "bare", "router")


def run_case(
    case: Case, args: argparse.Namespace, procs: dict[str, tuple[psutil.Process, str]]
) -> dict[str, Any]:
    """Rounds of every target in a rotating order; each proxy's CPU is its own process's, net of its idle rate
    (measured while the load went direct), per request."""
    conns = {t: [Conn(*host_port(procs[t][1])) for _ in range(case.concurrency)] for t in TARGETS}
    for t in TARGETS:  # warm every path: connections, the proxies' upstream pools, caches
        run_round(conns[t], "/api/chat", case.body, max(20, case.concurrency * 4), case.check)
    rounds: dict[str, list[RoundResult]] = {t: [] for t in TARGETS}
    cpu = {t: {p: 0.0 for p in TARGETS} for t in TARGETS}  # target -> process -> CPU seconds
    wall = dict.fromkeys(TARGETS, 0.0)
    threads = dict.fromkeys(TARGETS, 0.0)  # the router's worker threads' CPU during each target's rounds
    per_round: dict[str, list[tuple[float, int]]] = {t: [] for t in TARGETS}  # (own CPU s, requests)
    for i in range(case.rounds):
        for t in TARGETS[i % 3 :] + TARGETS[: i % 3]:
            before = {p: cpu_seconds(procs[p][0]) for p in TARGETS}
            threads0 = thread_seconds(procs["router"][0])
            res = run_round(conns[t], "/api/chat", case.body, case.requests, case.check)
            for p in TARGETS:
                cpu[t][p] += cpu_seconds(procs[p][0]) - before[p]
            wall[t] += res.wall
            threads[t] += thread_seconds(procs["router"][0]) - threads0
            rounds[t].append(res)
            per_round[t].append((cpu_seconds(procs[t][0]) - before[t], len(res.samples)))
            for err in res.errors[:3]:
                print(f"  {case.name} {t}: {err}", file=sys.stderr)
    for per in conns.values():
        for c in per:
            c.close()
    out: dict[str, Any] = {"case": case.name, "concurrency": case.concurrency, "chunks": case.chunks}
    for t in TARGETS:
        n = sum(len(r.samples) for r in rounds[t]) or 1
        out[t] = {k: summarize(rounds[t], k) for k in ("ttlb", "ttfb", "ttft")}
        out[t]["fake_cpu_ms_per_req"] = cpu[t]["direct"] * 1000 / n
        out[t]["per_round_p50_ms"] = [
            round(percentile([s.ttlb * 1000 for s in r.samples], 50), 3) for r in rounds[t] if r.samples
        ]
        if t != "direct":
            idle = cpu["direct"][t] / wall["direct"]  # heartbeats, expiry ticks: what it burns anyway
            out[t]["cpu_ms_per_req"] = (cpu[t][t] - idle * wall[t]) * 1000 / n
            out[t]["cpu_ms_per_req_rounds"] = [  # net of idle, per round: the spread
                round(1000 * (c - idle * r.wall) / max(k, 1), 3)
                for (c, k), r in zip(per_round[t], rounds[t], strict=True)
            ]
            out[t]["req_per_s_rounds"] = [round(len(r.samples) / r.wall, 1) for r in rounds[t] if r.wall]
    out["router_cpu_ms_per_req_net"] = out["router"]["cpu_ms_per_req"]
    n = sum(len(r.samples) for r in rounds["router"]) or 1
    idle_threads = threads["direct"] / wall["direct"]
    out["router"]["thread_cpu_ms_per_req"] = (threads["router"] - idle_threads * wall["router"]) * 1000 / n
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="requests per round per target")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per case (the targets' order rotates)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 16], help="non-stream concurrencies"
    )
    parser.add_argument(
        "--stream-chunks", type=int, default=100, help="chunks of the streamed reply (0: no stream cases)"
    )
    parser.add_argument("--stream-concurrency", type=int, default=16, help="clients of the stream cases")
    parser.add_argument(
        "--paced-delay", type=float, default=0.005, help="seconds between paced chunks (0: skip)"
    )
    parser.add_argument("--paced-requests", type=int, default=64, help="requests per round of the paced case")
    parser.add_argument("--only", choices=["fast", "paced"], help="run only the unpaced or the paced cases")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where the JSON goes")
    parser.add_argument("--profile", action="store_true", help="run the router under cProfile (slower!)")
    return parser.parse_args(argv)


def session(
    args: argparse.Namespace, cases: list[Case], chunk_delay: float, profile: Path | None
) -> list[dict[str, Any]]:
    """One set of processes (node paced by `chunk_delay`) and the cases run against it."""
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="herd-bench-") as tmp,
        processes(Path(tmp), args.stream_chunks, chunk_delay, profile) as procs,
        heartbeats(procs["router"][1], procs["direct"][1]),
    ):
        print(", ".join(f"{t} {u} (pid {p.pid})" for t, (p, u) in procs.items()), file=sys.stderr)
        for case in cases:
            print(f"running {case.name} at concurrency {case.concurrency} ...", file=sys.stderr)
            results.append(run_case(case, args, procs))
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    small = {"model": MODEL, "messages": MESSAGES, "stream": False, "options": {"num_predict": 5}}
    streamed = {"model": MODEL, "messages": MESSAGES, "stream": True}
    done = b'"done":true'
    n = args.stream_chunks
    fast = [
        Case("chat non-stream", c, json.dumps(small).encode(), done, args.requests, args.rounds)
        for c in args.concurrency
    ]
    if n:
        sbody = json.dumps(streamed).encode()
        fast.append(
            Case(
                f"stream {n} chunks", args.stream_concurrency, sbody, done, args.requests, args.rounds, n + 1
            )
        )
    paced = []
    if n and args.paced_delay:
        name = f"paced {n} chunks {args.paced_delay * 1000:g} ms apart"
        sbody = json.dumps(streamed).encode()
        paced.append(
            Case(name, args.stream_concurrency, sbody, done, args.paced_requests, args.rounds, n + 1)
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    profile = args.out / f"router-{stamp}.prof" if args.profile else None

    results = []
    if fast and args.only != "paced":
        results += session(args, fast, 0.0, profile)
    if paced and args.only != "fast":
        results += session(args, paced, args.paced_delay, None if fast and args.only != "paced" else profile)

    print(table(results) + (" (ROUTER PROFILED: figures inflated)" if profile else ""))
    print("\n" + floor_table(results))
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    meta = {"requests": args.requests, "rounds": args.rounds, "python": platform.python_version()}
    meta |= {"cpus": psutil.cpu_count(), "machine": platform.machine(), "git": rev.stdout.strip()}
    meta |= {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "profiled": bool(profile)}
    path = args.out / f"proxy-{stamp}.json"
    path.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"\nJSON: {path}")
    if profile and profile.exists():
        print_profile(profile)
        print(f"profile: {profile} (open with python -m pstats)")


if __name__ == "__main__":
    main()

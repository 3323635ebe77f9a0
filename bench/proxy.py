"""Router overhead bench: herd's router against a direct connection to the same fake Ollama node, one run.

    .venv/bin/python bench/proxy.py [--requests 300] [--rounds 5] [--concurrency 1 8] [--stream-chunks 100]

Starts a fake node (`bench/fake_node.py`) and `herd run` as subprocesses (so CPU is attributable),
registers the node with heartbeats, then alternates rounds direct/router per case: small non-stream
/api/chat at each concurrency and a streamed /api/chat (time to last byte). Prints a markdown table and
writes JSON to bench/results/.
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
from bench.report import percentile, print_profile, summarize, table  # noqa: E402

MODEL = "llama3.2:3b"
MESSAGES = [{"role": "user", "content": "Say hello."}]


@dataclass(frozen=True)
class Case:
    name: str
    concurrency: int
    body: bytes
    check: bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


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


@contextmanager
def processes(
    tmp: Path, stream_chunks: int, profile: Path | None
) -> Iterator[tuple[psutil.Process, str, psutil.Process, str]]:
    """The fake node and the router, started and stopped with SIGTERM."""
    fake_cmd = [
        sys.executable,
        "-m",
        "bench.fake_node",
        "--model",
        MODEL,
        "--num-chunks",
        str(max(stream_chunks, 5)),
    ]
    port = free_port()
    herd = Path(sys.executable).parent / "herd"
    router_cmd = [sys.executable, "-m", "cProfile", "-o", str(profile), str(herd)] if profile else [str(herd)]
    router_cmd += ["--log-level", "warning", "run", "--host", "127.0.0.1", "--port", str(port)]
    router_cmd += ["--no-local-node", "--no-mdns", "--data-dir", str(tmp / "data")]
    fake_log, router_log = tmp / "fake.log", tmp / "router.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with fake_log.open("wb") as flog, router_log.open("wb") as rlog:
            fake = subprocess.Popen(fake_cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=flog)
            procs.append(fake)
            router = subprocess.Popen(router_cmd, cwd=tmp, stdout=rlog, stderr=rlog)
            procs.append(router)
        assert fake.stdout is not None
        fake_url = fake.stdout.readline().decode().strip()
        if not fake_url:
            raise SystemExit(f"fake node failed:\n{fake_log.read_text()[-3000:]}")
        router_url = f"http://127.0.0.1:{port}"
        wait_http(router_url + "/api/version", router, router_log)
        yield psutil.Process(fake.pid), fake_url, psutil.Process(router.pid), router_url
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


def run_case(
    case: Case, args: argparse.Namespace, fake: tuple[psutil.Process, str], router: tuple[psutil.Process, str]
) -> dict[str, Any]:
    targets = {"direct": fake[1], "router": router[1]}
    conns = {t: [Conn(*host_port(u)) for _ in range(case.concurrency)] for t, u in targets.items()}
    for t in targets:  # warm both paths: connections, the router's upstream pool, caches
        run_round(conns[t], "/api/chat", case.body, max(20, case.concurrency * 4), case.check)
    rounds: dict[str, list[RoundResult]] = {"direct": [], "router": []}
    cpu: dict[str, dict[str, float]] = {t: {"router": 0.0, "fake": 0.0, "wall": 0.0} for t in targets}
    for i in range(args.rounds):
        for t in ("direct", "router") if i % 2 == 0 else ("router", "direct"):
            r0, f0 = cpu_seconds(router[0]), cpu_seconds(fake[0])
            res = run_round(conns[t], "/api/chat", case.body, args.requests, case.check)
            cpu[t]["router"] += cpu_seconds(router[0]) - r0
            cpu[t]["fake"] += cpu_seconds(fake[0]) - f0
            cpu[t]["wall"] += res.wall
            rounds[t].append(res)
            for err in res.errors[:3]:
                print(f"  {case.name} {t}: {err}", file=sys.stderr)
    for per in conns.values():
        for c in per:
            c.close()
    out: dict[str, Any] = {"case": case.name, "concurrency": case.concurrency}
    for t in targets:
        n = sum(len(r.samples) for r in rounds[t]) or 1
        out[t] = {"ttlb": summarize(rounds[t], "ttlb"), "ttfb": summarize(rounds[t], "ttfb")}
        out[t]["router_cpu_ms_per_req"] = cpu[t]["router"] * 1000 / n
        out[t]["fake_cpu_ms_per_req"] = cpu[t]["fake"] * 1000 / n
        out[t]["router_cpu_ms_per_s"] = cpu[t]["router"] * 1000 / cpu[t]["wall"]
        out[t]["per_round_p50_ms"] = [
            round(percentile([s.ttlb * 1000 for s in r.samples], 50), 3) for r in rounds[t] if r.samples
        ]
    idle = out["direct"]["router_cpu_ms_per_s"]  # heartbeats, expiry ticks: what the router burns anyway
    n = out["router"]["ttlb"]["requests"] or 1
    out["router_cpu_ms_per_req_net"] = (
        out["router"]["router_cpu_ms_per_req"] - idle * cpu["router"]["wall"] / n
    )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="requests per round per target")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per case (direct/router alternate)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8], help="non-stream concurrencies")
    parser.add_argument(
        "--stream-chunks", type=int, default=100, help="chunks of the streamed reply (0: no stream case)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where the JSON goes")
    parser.add_argument("--profile", action="store_true", help="run the router under cProfile (slower!)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    small = {"model": MODEL, "messages": MESSAGES, "stream": False, "options": {"num_predict": 5}}
    streamed = {"model": MODEL, "messages": MESSAGES, "stream": True}
    done = b'"done":true'
    cases = [Case("chat non-stream", c, json.dumps(small).encode(), done) for c in args.concurrency]
    if args.stream_chunks:
        cases.append(Case(f"stream {args.stream_chunks} chunks", 1, json.dumps(streamed).encode(), done))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    profile = args.out / f"router-{stamp}.prof" if args.profile else None

    results = []
    with (
        tempfile.TemporaryDirectory(prefix="herd-bench-") as tmp,
        processes(Path(tmp), args.stream_chunks, profile) as (fake_proc, fake_url, router_proc, router_url),
        heartbeats(router_url, fake_url),
    ):
        print(f"fake node {fake_url} (pid {fake_proc.pid}), router {router_url} (pid {router_proc.pid})")
        for case in cases:
            print(f"running {case.name} at concurrency {case.concurrency} ...", file=sys.stderr)
            results.append(run_case(case, args, (fake_proc, fake_url), (router_proc, router_url)))

    print(table(results) + (" (ROUTER PROFILED: figures inflated)" if profile else ""))
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

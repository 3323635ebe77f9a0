"""LAN proxy bench: a fake Ollama reached directly against the same fake through `herd node --lan-proxy`, one run.

    .venv/bin/python bench/lanproxy.py [--requests 300] [--rounds 5] [--stream-chunks 100]

Starts two fake nodes (`bench/fake_node.py`: one answering at once, one pacing its stream at 20 ms a chunk) and
one agent per fake with `--lan-proxy` and a fleet token (subprocesses, so the agent's CPU is attributable; the
agents' router does not exist, they only serve the proxy). The load generator (`bench/loadgen.py`, the same
raw keep-alive sockets for both targets) alternates rounds direct/proxy, signing every proxied request the way
the router does (outside the timed part). Cases: a small non-stream chat, a 100-chunk stream (time to last
byte), and on the paced fake the time to the FIRST NDJSON line of a 20-chunk stream, which shows the proxy
relays chunk by chunk (a buffering proxy would add the whole generation time). Prints a markdown table and
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
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import Conn, RoundResult, run_round  # noqa: E402
from bench.proxy import MESSAGES, MODEL, cpu_seconds, free_port, host_port  # noqa: E402
from bench.report import percentile, summarize  # noqa: E402
from herd.fleet.signing import sign  # noqa: E402

TOKEN = "bench-fleet-token-0123456789abcdef"
PACED_CHUNKS, PACED_DELAY = 20, 0.02


@contextmanager
def fake_node(tmp: Path, name: str, *args: str) -> Iterator[tuple[psutil.Process, str]]:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_node", "--model", MODEL, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=out,
        )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        if not url:
            raise SystemExit(f"fake node failed:\n{log.read_text()[-3000:]}")
        yield psutil.Process(proc.pid), url
    finally:
        stop(proc)


@contextmanager
def agent(tmp: Path, name: str, backend: str) -> Iterator[tuple[psutil.Process, str]]:
    port = free_port()
    herd = Path(sys.executable).parent / "herd"
    cmd = [str(herd), "--log-level", "error", "node", "--backend-url", backend, "--node-id", name]
    cmd += ["--router-url", f"http://127.0.0.1:{free_port()}", "--heartbeat-interval", "60"]
    cmd += [
        "--data-dir",
        str(tmp / name),
        "--fleet-token",
        TOKEN,
        "--lan-proxy",
        "--lan-proxy-port",
        str(port),
    ]
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        with httpx.Client(trust_env=False, timeout=2) as http:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"agent exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    if http.get(url + "/api/version").status_code == 401:  # up, and refusing unsigned
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the LAN proxy did not answer within 30 s")
                time.sleep(0.1)
        yield psutil.Process(proc.pid), url
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def signer(target: str) -> Any:
    if target == "direct":
        return None
    return lambda method, path, body: sign(TOKEN, method, path, body, time.time())


def run_case(
    name: str, body: bytes, args: argparse.Namespace, fake: str, proxy: tuple[psutil.Process, str]
) -> dict[str, Any]:
    targets = {"direct": fake, "proxy": proxy[1]}
    conns = {t: [Conn(*host_port(u))] for t, u in targets.items()}
    check = b'"done":true'
    for t in targets:  # warm both paths
        run_round(conns[t], "/api/chat", body, 20, check, signer(t))
    rounds: dict[str, list[RoundResult]] = {t: [] for t in targets}
    cpu = {t: 0.0 for t in targets}
    for i in range(args.rounds):
        for t in ("direct", "proxy") if i % 2 == 0 else ("proxy", "direct"):
            c0 = cpu_seconds(proxy[0])
            res = run_round(conns[t], "/api/chat", body, args.requests, check, signer(t))
            cpu[t] += cpu_seconds(proxy[0]) - c0
            rounds[t].append(res)
            for err in res.errors[:3]:
                print(f"  {name} {t}: {err}", file=sys.stderr)
    for per in conns.values():
        for c in per:
            c.close()
    out: dict[str, Any] = {"case": name}
    for t in targets:
        out[t] = {"ttlb": summarize(rounds[t], "ttlb"), "ttfb": summarize(rounds[t], "ttfb")}
    n = out["proxy"]["ttlb"]["requests"] or 1
    out["agent_cpu_ms_per_req"] = (cpu["proxy"] - cpu["direct"]) * 1000 / n  # minus its idle burn
    return out


def first_line(url: str, body: bytes, headers: dict[str, str]) -> float:
    """Seconds from sending a streamed chat to its first NDJSON line; reads the rest, then closes."""
    host, port = host_port(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = f"POST /api/chat HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        sock.sendall(head.encode() + body)
        buf, first = b"", 0.0
        while not buf.endswith(b"\r\n0\r\n\r\n") and (data := sock.recv(65536)):
            buf += data
            at = buf.find(b"\r\n\r\n")
            if not first and at >= 0 and b"\n" in buf[at + 4 :].split(b"\r\n", 1)[-1]:
                first = time.perf_counter() - start
        if not buf.startswith(b"HTTP/1.1 200") or b'"done":true' not in buf:
            raise SystemExit(f"paced stream failed: {buf[:300]!r}")
        return first


def paced_case(fake: str, proxy: str, samples: int) -> dict[str, Any]:
    body = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": True}).encode()
    times: dict[str, list[float]] = {"direct": [], "proxy": []}
    for i in range(samples):
        for t in ("direct", "proxy") if i % 2 == 0 else ("proxy", "direct"):
            headers = {} if t == "direct" else sign(TOKEN, "POST", "/api/chat", body, time.time())
            times[t].append(first_line(fake if t == "direct" else proxy, body, headers) * 1000)
    return {t: {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99)} for t, v in times.items()}


def sign_cost(body: bytes, n: int = 20_000) -> float:
    """Microseconds the router spends signing one request with this body."""
    start = time.perf_counter()
    for _ in range(n):
        sign(TOKEN, "POST", "/api/chat", body, 1.0)
    return (time.perf_counter() - start) / n * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="requests per round per target")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per case (direct/proxy alternate)")
    parser.add_argument("--stream-chunks", type=int, default=100, help="chunks of the streamed reply")
    parser.add_argument("--paced", type=int, default=40, help="paced-stream samples per target")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where the JSON goes")
    args = parser.parse_args(argv)
    small = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": False, "options": {"num_predict": 5}})
    streamed = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": True})
    with tempfile.TemporaryDirectory(prefix="herd-bench-lan-") as tmpdir, ExitStack() as stack:
        tmp = Path(tmpdir)
        _, fast = stack.enter_context(fake_node(tmp, "fake", "--num-chunks", str(args.stream_chunks)))
        paced_args = ("--num-chunks", str(PACED_CHUNKS), "--chunk-delay", str(PACED_DELAY))
        _, paced = stack.enter_context(fake_node(tmp, "paced", *paced_args))
        proxy = stack.enter_context(agent(tmp, "agent", fast))
        _, paced_proxy = stack.enter_context(agent(tmp, "paced-agent", paced))
        results = [
            run_case("chat non-stream", small.encode(), args, fast, proxy),
            run_case(f"stream {args.stream_chunks} chunks", streamed.encode(), args, fast, proxy),
        ]
        pacing = paced_case(paced, paced_proxy, args.paced)
    signing = sign_cost(small.encode())
    rows = ["| case | direct p50 / p99 | via LAN proxy p50 / p99 | added p50 / p99 | agent CPU ms/req |"]
    rows.append("|---|---:|---:|---:|---:|")
    for r in results:
        d, p = r["direct"]["ttlb"], r["proxy"]["ttlb"]
        rows.append(
            f"| {r['case']} | {d['p50_ms']:.2f} / {d['p99_ms']:.2f} ms | {p['p50_ms']:.2f} / {p['p99_ms']:.2f} ms "
            f"| {p['p50_ms'] - d['p50_ms']:+.2f} / {p['p99_ms'] - d['p99_ms']:+.2f} ms "
            f"| {r['agent_cpu_ms_per_req']:.2f} |"
        )
    d, p = pacing["direct"], pacing["proxy"]
    rows.append(
        f"| first line of a paced stream ({PACED_CHUNKS} x {PACED_DELAY * 1000:.0f} ms) | {d['p50_ms']:.2f} / "
        f"{d['p99_ms']:.2f} ms | {p['p50_ms']:.2f} / {p['p99_ms']:.2f} ms | {p['p50_ms'] - d['p50_ms']:+.2f} / "
        f"{p['p99_ms'] - d['p99_ms']:+.2f} ms | |"
    )
    print("\n".join(rows))
    print(
        f"\nlatency = time to last byte (paced: to the first NDJSON line); router signing: {signing:.1f} µs/req"
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    meta = {"requests": args.requests, "rounds": args.rounds, "python": platform.python_version()}
    meta |= {
        "cpus": psutil.cpu_count(),
        "git": rev.stdout.strip(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = args.out / f"lanproxy-{stamp}.json"
    payload = {"meta": meta, "results": results, "paced_first_line": pacing, "sign_us": signing}
    path.write_text(json.dumps(payload, indent=2))
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()

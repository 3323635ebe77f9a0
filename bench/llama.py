"""Real inference through herd vs straight to one llama.cpp server, in the same run.

Starts two `llama-server` processes (SmolLM2-135M, `-t 1`, 2 slots each) with `herd node --backend openai`
agents and a `herd run`, then measures with the same client code:

- time to first token, sequential streaming requests with a fresh prompt each (no prompt-cache hits):
  straight to node A vs through herd (2 nodes, one request at a time, so only herd's own cost differs);
- aggregate generated tokens per second with 4 concurrent clients: straight to node A vs through herd.

Token counts are the servers' own (`usage`). Needs `python3 tasks.py e2e-setup` first. Run:
`python3 tasks.py bench-llama [--requests N]`.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from llama_build import server_binary  # noqa: E402
from test_llama_e2e import model_path  # noqa: E402

PROMPTS = [
    "Write two sentences about the sea.",
    "List four fruits and their colors.",
    "Explain what a router does, briefly.",
    "Describe a cat in three sentences.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def ttft(client: httpx.Client, base: str, prompt: str) -> float:
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 8,
        "stream": True,
        "temperature": 0,
    }
    start = time.perf_counter()
    elapsed = None
    with client.stream("POST", base + "/v1/chat/completions", json=body) as resp:
        for line in resp.iter_lines():  # read to the end: both paths finish the same work
            if elapsed is None and line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    elapsed = time.perf_counter() - start
    if elapsed is not None:
        return elapsed
    raise RuntimeError("no token")


def one(client: httpx.Client, base: str, prompt: str, max_tokens: int) -> int:
    body = {"model": "smollm2", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    resp = client.post(base + "/v1/chat/completions", json=body)
    resp.raise_for_status()
    return int(resp.json()["usage"]["completion_tokens"])


def throughput(base: str, requests: int, max_tokens: int, clients: int = 4) -> float:
    with httpx.Client(trust_env=False, timeout=300) as client, ThreadPoolExecutor(clients) as pool:
        start = time.perf_counter()
        tokens = sum(
            pool.map(lambda i: one(client, base, PROMPTS[i % len(PROMPTS)], max_tokens), range(requests))
        )
        return tokens / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--ttft-samples", type=int, default=12)
    args = parser.parse_args()
    model = model_path()
    if not server_binary().exists() or model is None:
        print("run `python3 tasks.py e2e-setup` first", file=sys.stderr)
        return 2
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        try:
            rport = free_port()
            router = f"http://127.0.0.1:{rport}"
            herd = [sys.executable, "-m", "herd"]
            procs.append(
                spawn(
                    [
                        *herd,
                        "run",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(rport),
                        "--data-dir",
                        str(tmp / "r"),
                        "--no-local-node",
                        "--no-mdns",
                    ],
                    tmp / "router.log",
                )
            )
            direct = ""
            for name in ("a", "b"):
                port = free_port()
                direct = direct or f"http://127.0.0.1:{port}"
                procs.append(
                    spawn(
                        [
                            str(server_binary()),
                            "-m",
                            str(model),
                            "--alias",
                            "smollm2",
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(port),
                            "-t",
                            "1",
                            "-c",
                            "2048",
                            "-np",
                            "2",
                            "--no-webui",
                        ],
                        tmp / f"llama-{name}.log",
                    )
                )
                procs.append(
                    spawn(
                        [
                            *herd,
                            "node",
                            "--backend",
                            "openai",
                            "--backend-url",
                            f"http://127.0.0.1:{port}",
                            "--router-url",
                            router,
                            "--node-id",
                            name,
                            "--data-dir",
                            str(tmp / f"n-{name}"),
                            "--heartbeat-interval",
                            "1",
                        ],
                        tmp / f"node-{name}.log",
                    )
                )
            with httpx.Client(trust_env=False, timeout=300) as client:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        nodes = client.get(router + "/fleet/status").json()["nodes"]
                        if sum(1 for n in nodes if n["routable"] and n["models"]) == 2:
                            break
                    except (httpx.HTTPError, ValueError):
                        pass
                    time.sleep(0.3)
                else:
                    raise RuntimeError("nodes did not join")
                for base in (direct, router):  # warm both paths (prompt caches, connections)
                    for p in PROMPTS:
                        one(client, base, p, 4)
                results: dict[str, list[float]] = {"direct": [], "herd": []}
                for i in range(args.ttft_samples):  # interleaved, so drift hits both alike
                    # a fresh prefix every time: no prompt-cache hit on either path
                    results["direct"].append(
                        ttft(client, direct, f"Request {i}-d. {PROMPTS[i % len(PROMPTS)]}")
                    )
                    results["herd"].append(
                        ttft(client, router, f"Request {i}-h. {PROMPTS[i % len(PROMPTS)]}")
                    )
            t_direct = throughput(direct, args.requests, args.max_tokens)
            t_herd = throughput(router, args.requests, args.max_tokens)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    d50, h50 = statistics.median(results["direct"]), statistics.median(results["herd"])
    print("| measure | straight to one llama-server | through herd (2 nodes) | ratio |")
    print("|---|---|---|---|")
    print(
        f"| time to first token, p50 (sequential) | {d50 * 1000:.1f} ms | {h50 * 1000:.1f} ms | {h50 / d50:.2f}x |"
    )
    print(
        f"| generated tokens/s, 4 clients, {args.requests} requests | {t_direct:.1f} | {t_herd:.1f} | "
        f"{t_herd / t_direct:.2f}x |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

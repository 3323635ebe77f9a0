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
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from llama_cluster import LlamaCluster, missing  # noqa: E402

PROMPTS = [
    "Write two sentences about the sea.",
    "List four fruits and their colors.",
    "Explain what a router does, briefly.",
    "Describe a cat in three sentences.",
]


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


def ttft_ollama(client: httpx.Client, base: str, prompt: str) -> float:
    """The same through herd's Ollama dialect: translated to the node's OpenAI API and back."""
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": prompt}],
        "options": {"num_predict": 8},
    }
    start = time.perf_counter()
    elapsed = None
    with client.stream("POST", base + "/api/chat", json=body) as resp:
        for line in resp.iter_lines():
            if elapsed is None and line and json.loads(line).get("message", {}).get("content"):
                elapsed = time.perf_counter() - start
    if elapsed is None:
        raise RuntimeError("no token")
    return elapsed


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
    why = missing()
    if why:
        print(why, file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory() as tmp,
        LlamaCluster(Path(tmp), ["a", "b"], embeddings=False) as cluster,
    ):
        cluster.wait_routable({"a", "b"})
        direct, router = cluster.server_url["a"], cluster.router
        client = cluster.http
        for base in (direct, router):  # warm both paths (connections, the template's cached prefix)
            for p in PROMPTS:
                one(client, base, p, 4)
        results: dict[str, list[float]] = {"direct": [], "herd": [], "ollama": []}
        for i in range(args.ttft_samples):  # interleaved, so drift hits both alike
            # a fresh prefix every time: no prompt-cache hit on either path
            results["direct"].append(ttft(client, direct, f"Request {i}-d. {PROMPTS[i % len(PROMPTS)]}"))
            results["herd"].append(ttft(client, router, f"Request {i}-h. {PROMPTS[i % len(PROMPTS)]}"))
            results["ollama"].append(
                ttft_ollama(client, router, f"Request {i}-o. {PROMPTS[i % len(PROMPTS)]}")
            )
        t_direct = throughput(direct, args.requests, args.max_tokens)
        t_herd = throughput(router, args.requests, args.max_tokens)
    d50, h50 = statistics.median(results["direct"]), statistics.median(results["herd"])
    print("| measure | straight to one llama-server | through herd (2 nodes) | ratio |")
    print("|---|---|---|---|")
    print(
        f"| time to first token, p50 (sequential) | {d50 * 1000:.1f} ms | {h50 * 1000:.1f} ms | {h50 / d50:.2f}x |"
    )
    o50 = statistics.median(results["ollama"])
    print(
        f"| same, caller on herd's Ollama dialect (translated both ways) | {d50 * 1000:.1f} ms | "
        f"{o50 * 1000:.1f} ms | {o50 / d50:.2f}x |"
    )
    print(
        f"| generated tokens/s, 4 clients, {args.requests} requests | {t_direct:.1f} | {t_herd:.1f} | "
        f"{t_herd / t_direct:.2f}x |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

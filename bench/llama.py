"""Real inference through herd vs straight to one llama.cpp server, in the same run.

Starts two `llama-server` processes (SmolLM2-135M, `-t 1`, 2 slots each) with `herd node --backend openai`
agents and a `herd run`, then measures with the same client code:

- time to first token, sequential streaming requests with a fresh prompt each (no prompt-cache hits):
  straight to node A vs through herd (2 nodes, one request at a time, so only herd's own cost differs);
- aggregate generated tokens per second with 4 concurrent clients: straight to node A vs through herd.

- multi-turn chats (`--multiturn`, issue 12): 4 conversations x 6 turns run side by side (users pause 0.5-3 s
  between turns), each opening with its own ~800-token document and growing each turn (2 nodes x 2 slots, 2048 tokens of context per slot): time
  to first token p50 through a router with conversation affinity off, then on (fresh servers each time).

Token counts are the servers' own (`usage`). Needs `python3 tasks.py e2e-setup` first. Run:
`python3 tasks.py bench-llama [--requests N] [--multiturn | --multiturn-only]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
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


WORDS = [
    "river",
    "stone",
    "lantern",
    "harbor",
    "meadow",
    "copper",
    "signal",
    "orchard",
    "tunnel",
    "glacier",
    "compass",
    "violet",
    "ember",
]


def document(conv: int, tokens: int = 800) -> str:
    """A conversation's own opening document, about `tokens` tokens of plain English."""
    out, i = [], conv * 7
    while len(" ".join(out)) < tokens * 4:
        a, b, c = WORDS[i % len(WORDS)], WORDS[(i * 3 + conv) % len(WORDS)], WORDS[(i * 5 + 1) % len(WORDS)]
        out.append(f"In section {i} of file {conv}, the {a} was next to the {b} and far from the {c}.")
        i += 1
    return " ".join(out)


def conversation(client: httpx.Client, base: str, conv: int, turns: int) -> list[float]:
    """One chat, turn after turn; the time to first token of each turn."""
    messages = [{"role": "system", "content": "Answer in one short sentence.\n\n" + document(conv)}]
    out = []
    think = random.Random(conv)  # the user reads and types: 0.5-3 s between turns, the same in every run
    time.sleep(conv * 0.7)
    for turn in range(turns):
        if turn:
            time.sleep(think.uniform(0.5, 3.0))
        messages.append(
            {"role": "user", "content": f"Question {turn}: what was next to item {turn * 3 + conv}?"}
        )
        body = {"model": "smollm2", "messages": messages, "max_tokens": 24, "stream": True, "temperature": 0}
        start, first, text = time.perf_counter(), None, []
        tag = {"X-Herd-Tags": f"conv{conv}"}
        with client.stream("POST", base + "/v1/chat/completions", json=body, headers=tag) as resp:
            resp.raise_for_status()
            for line in resp.iter_lines():
                if not line.startswith("data: {"):
                    continue
                choices = json.loads(line[6:]).get("choices") or []
                piece = (choices[0].get("delta") or {}).get("content") if choices else None
                if piece:
                    first = first or time.perf_counter() - start
                    text.append(piece)
        if first is None:
            raise RuntimeError("no token")
        out.append(first)
        messages.append({"role": "assistant", "content": "".join(text)})
    return out


def multiturn(affinity: bool, conversations: int = 4, turns: int = 6) -> tuple[list[float], dict[str, int]]:
    """Time to first token of every turn, and the router's affinity verdicts, on a fresh 2-node cluster."""
    flags = () if affinity else ("--no-affinity",)
    with (
        tempfile.TemporaryDirectory() as tmp,
        LlamaCluster(
            Path(tmp), ["a", "b"], embeddings=False, ctx_per_slot=2048, router_args=flags
        ) as cluster,
    ):
        cluster.wait_routable({"a", "b"})
        with ThreadPoolExecutor(conversations) as pool:
            runs = list(
                pool.map(lambda c: conversation(cluster.http, cluster.router, c, turns), range(conversations))
            )
        traces = cluster.http.get(cluster.router + "/fleet/traces", params={"limit": 100}).json()["traces"]
        if os.environ.get("HERD_BENCH_DUMP"):
            for row in sorted(traces, key=lambda r: r["ts"]):
                print(
                    row["tags"],
                    row["node"],
                    row["affinity"],
                    row["ttft"],
                    row["prompt_tokens"],
                    row["est_finish"],
                )
    verdicts: dict[str, int] = {}
    for row in traces:
        key = str(row.get("affinity"))
        verdicts[key] = verdicts.get(key, 0) + 1
    return [t for run in runs for t in run], verdicts


def report_multiturn() -> None:
    off, off_verdicts = multiturn(affinity=False)
    on, on_verdicts = multiturn(affinity=True)
    p_off, p_on = statistics.median(off), statistics.median(on)
    print(
        "\n| multi-turn (4 conversations x 6 turns, ~800-token documents) | affinity off | affinity on | ratio |"
    )
    print("|---|---|---|---|")
    print(
        f"| time to first token, p50 | {p_off * 1000:.0f} ms | {p_on * 1000:.0f} ms | {p_on / p_off:.2f}x |"
    )
    q = statistics.quantiles
    print(
        f"| time to first token, p90 | {q(off, n=10)[-1] * 1000:.0f} ms | {q(on, n=10)[-1] * 1000:.0f} ms | |"
    )
    print(f"| router's affinity verdicts (traces) | {off_verdicts} | {on_verdicts} | |")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--ttft-samples", type=int, default=12)
    parser.add_argument("--multiturn", action="store_true", help="also run the multi-turn affinity case")
    parser.add_argument("--multiturn-only", action="store_true", help="only the multi-turn affinity case")
    args = parser.parse_args()
    why = missing()
    if why:
        print(why, file=sys.stderr)
        return 2
    if args.multiturn_only:
        report_multiturn()
        return 0
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
    if args.multiturn:
        report_multiturn()
    return 0


if __name__ == "__main__":
    sys.exit(main())

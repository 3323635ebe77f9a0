"""The bench's numbers and their presentation: latency summaries, the markdown table, the profile.

Pure formatting over the results `bench/proxy.py` collects; no processes or sockets here.
"""

from __future__ import annotations

import io
import math
import pstats
from pathlib import Path
from typing import Any

from bench.loadgen import RoundResult


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def summarize(results: list[RoundResult], key: str) -> dict[str, float]:
    values = [getattr(s, key) * 1000 for r in results for s in r.samples]
    count, wall = len(values), sum(r.wall for r in results)
    if not values:  # every request failed: the errors say why
        values = [float("nan")]
    return {
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
        "mean_ms": sum(values) / count,
        "req_per_s": count / wall if wall else 0.0,
        "requests": count,
        "errors": sum(len(r.errors) for r in results),
    }


HEADER = ["case", "conc", "direct p50 / p99", "router p50 / p99", "added p50 / p99", "direct req/s"]
HEADER += ["router req/s", "router CPU ms/req"]


def row(r: dict[str, Any]) -> str:
    d, h = r["direct"]["ttlb"], r["router"]["ttlb"]
    cells = [r["case"], str(r["concurrency"]), f"{d['p50_ms']:.2f} / {d['p99_ms']:.2f} ms"]
    cells += [f"{h['p50_ms']:.2f} / {h['p99_ms']:.2f} ms"]
    cells += [f"{h['p50_ms'] - d['p50_ms']:+.2f} / {h['p99_ms'] - d['p99_ms']:+.2f} ms"]
    cells += [f"{d['req_per_s']:.0f}", f"{h['req_per_s']:.0f}", f"{r['router_cpu_ms_per_req_net']:.2f}"]
    return "| " + " | ".join(cells) + " |"


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| " + " | ".join(HEADER) + " |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows += [row(r) for r in results]
    for r in results:
        if r["case"].startswith("stream"):
            d, h = r["direct"]["ttfb"], r["router"]["ttfb"]
            rows.append(f"\n{r['case']}: time to first byte p50 direct {d['p50_ms']:.2f} ms, ")
            rows[-1] += f"router {h['p50_ms']:.2f} ms"
    rows.append(
        "\nlatency = time to last byte; router CPU = its process CPU minus its idle rate, per request"
    )
    return "\n".join(rows)


def print_profile(path: Path, top: int = 30) -> None:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    print(out.getvalue().replace(str(Path(__file__).resolve().parent.parent) + "/", ""))


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


FLOOR_HEADER = [
    "case",
    "conc",
    "CPU ms/req herd (rounds)",
    "bare (rounds)",
    "herd/bare",
    "added p50 herd / bare",
]
FLOOR_HEADER += ["ratio", "added p99 herd / bare", "req/s herd / bare", "ratio"]


def floor_row(r: dict[str, Any]) -> str:
    """herd against the bare pass-through (the floor) for one case; added = over the direct connection."""
    d, b, h = r["direct"]["ttlb"], r["bare"]["ttlb"], r["router"]["ttlb"]
    hc, bc = r["router"]["cpu_ms_per_req"], r["bare"]["cpu_ms_per_req"]
    ha50, ba50 = h["p50_ms"] - d["p50_ms"], b["p50_ms"] - d["p50_ms"]
    ha99, ba99 = h["p99_ms"] - d["p99_ms"], b["p99_ms"] - d["p99_ms"]
    cells = [r["case"], str(r["concurrency"])]
    cells += [f"{hc:.2f} ({_spread(r['router']['cpu_ms_per_req_rounds'])})"]
    cells += [f"{bc:.2f} ({_spread(r['bare']['cpu_ms_per_req_rounds'])})", _ratio(hc, bc)]
    cells += [f"{ha50:+.2f} / {ba50:+.2f} ms", _ratio(ha50, ba50), f"{ha99:+.2f} / {ba99:+.2f} ms"]
    cells += [f"{h['req_per_s']:.0f} / {b['req_per_s']:.0f}", _ratio(h["req_per_s"], b["req_per_s"])]
    return "| " + " | ".join(cells) + " |"


def floor_table(results: list[dict[str, Any]]) -> str:
    """herd's ratios to the floor: CPU per request, added latency, requests per second; for streams time to
    first token and CPU per chunk."""
    rows = ["herd against the bare pass-through (same stack, same node, same load, one run):", ""]
    rows += ["| " + " | ".join(FLOOR_HEADER) + " |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows += [floor_row(r) for r in results]
    for r in results:
        if r.get("chunks", 1) > 1:
            d, b, h = (r[t]["ttft"] for t in ("direct", "bare", "router"))
            hc, bc = r["router"]["cpu_ms_per_req"] / r["chunks"], r["bare"]["cpu_ms_per_req"] / r["chunks"]
            rows.append(
                f"\n{r['case']} at {r['concurrency']} clients: time to first token p50 direct {d['p50_ms']:.2f} ms, "
                f"bare {b['p50_ms']:.2f} ms, herd {h['p50_ms']:.2f} ms (herd/bare {_ratio(h['p50_ms'], b['p50_ms'])}); "
                f"CPU per chunk herd {hc * 1000:.1f} µs, bare {bc * 1000:.1f} µs ({_ratio(hc, bc)})"
            )
    for r in results:
        ms = r["router"].get("thread_cpu_ms_per_req", 0.0)
        rows.append(
            f"\n{r['case']} at {r['concurrency']}: {ms:.3f} ms of herd's CPU per request in worker threads"
        )
    rows.append(
        "\nCPU = the proxy process's own CPU net of its idle rate, per request; spreads are per round"
    )
    return "\n".join(rows)

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

"""Benchmark decisions (pure): what to run, when to step aside for real traffic, how samples become results,
and how results become priors for the routing performance model.

The runner (`herd.insight.runner`) does the I/O: it asks `targets` what to run, calls `yield_reason` before every
request, turns each finished request's final Ollama chunk into a `Sample` with `sample_of`, and each (node,
model, parallel) batch into a `BenchResult` with `summarise`. Nodes report their own counters (Ollama's
`prompt_eval_count`/`prompt_eval_duration`/`eval_count`/`eval_duration`/`load_duration`; OpenAI-compatible nodes
get the same fields from `usage` and `timings` in `herd.backends.openai_response`), so speeds are the node's, not
the network's; time to first token is measured by the router.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from herd.errors import BadRequest, NotFound
from herd.fleet.state import FleetSnapshot, normalize_model
from herd.routing.latency import LatencyBook
from herd.routing.perf import prior

MAX_PARALLEL = 16
DEFAULT_PARALLEL = 4


@dataclass(frozen=True, slots=True)
class BenchRequest:
    """What `POST /fleet/benchmarks` asked for (None: the default)."""

    nodes: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    parallel: int = DEFAULT_PARALLEL


@dataclass(frozen=True, slots=True)
class Sample:
    """One benchmark request: the router's time to first token and the node's own counters."""

    ttft_s: float
    prompt_tokens: int = 0
    prompt_s: float = 0.0
    gen_tokens: int = 0
    gen_s: float = 0.0
    load_s: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class BenchResult:
    """One (node, model) at one level of parallelism. Speeds in tokens per second; None when not measured."""

    node_id: str
    model: str
    parallel: int
    ttft_s: float | None
    prompt_tps: float | None
    gen_tps: float | None  # per request (median)
    load_s: float | None
    aggregate_tps: float | None = None  # generated tokens per second over the whole batch
    requests: int = 0
    errors: int = 0
    prompt_set: str = ""
    ts: float = 0.0
    run_id: str = ""
    backend: str = ""
    backend_version: str | None = None
    cpu_count: int = 0
    mem_total: int = 0
    error: str | None = None  # the last failed request's error, when some failed

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _names(value: Any, field: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise BadRequest(f"'{field}' must be a non-empty list of names", param=field)
    return tuple(dict.fromkeys(v.strip() for v in value))


def parse_request(body: Any) -> BenchRequest:
    """Validate the POST body: `{"nodes"?: [..], "models"?: [..], "parallel"?: N}`."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest('send a JSON object, e.g. {"nodes": ["desk"], "parallel": 4}')
    unknown = set(body) - {"nodes", "models", "parallel"}
    if unknown:
        raise BadRequest(f"unknown field '{sorted(unknown)[0]}'", param=sorted(unknown)[0])
    parallel = body.get("parallel", DEFAULT_PARALLEL)
    if not isinstance(parallel, int) or isinstance(parallel, bool) or not 1 <= parallel <= MAX_PARALLEL:
        raise BadRequest(f"'parallel' must be a whole number from 1 to {MAX_PARALLEL}", param="parallel")
    models = _names(body.get("models"), "models")
    return BenchRequest(
        _names(body.get("nodes"), "nodes"),
        tuple(normalize_model(m) for m in models) if models else None,
        parallel,
    )


def targets(snap: FleetSnapshot, req: BenchRequest, paused: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The (node, model) pairs to run: the named nodes (default: every routable, unpaused node) times the named
    models each of them has (default: the models each has loaded)."""
    skip = set(paused)
    if req.nodes is not None:
        missing = [n for n in req.nodes if n not in snap.nodes]
        if missing:
            raise NotFound(f"no node '{missing[0]}' in the fleet", param="nodes")
        nodes = [snap.nodes[n] for n in req.nodes]
        down = [n.node_id for n in nodes if not n.routable]
        if down:
            raise BadRequest(f"node '{down[0]}' is not serving (offline or draining)", param="nodes")
    else:
        nodes = [n for n in snap.nodes.values() if n.routable and n.node_id not in skip]
    if req.models is not None:
        unknown = [m for m in req.models if not any(m in n.models for n in snap.nodes.values())]
        if unknown:
            raise NotFound(f"model '{unknown[0]}' is on no node", param="models")
    out = [
        (n.node_id, m)
        for n in sorted(nodes, key=lambda n: n.node_id)
        for m in sorted(n.models if req.models is not None else n.loaded)
        if req.models is None or m in req.models
    ]
    if not out:
        raise BadRequest(
            "nothing to benchmark: no chosen node has "
            + (
                "the chosen models"
                if req.models is not None
                else "a loaded model (name the models to load them)"
            )
        )
    return out


def yield_reason(
    waiting: int, in_flight: Mapping[str, int], own: Mapping[str, int], node_id: str
) -> str | None:
    """Why the benchmark must not send its next request to `node_id` now, or None to go: real requests wait in
    the holding queue (any model: the fleet is short of capacity somewhere), or the node is running requests
    besides the benchmark's own."""
    if waiting:
        return f"{waiting} request(s) waiting in the queue"
    others = in_flight.get(node_id, 0) - own.get(node_id, 0)
    if others > 0:
        return f"{others} real request(s) running on {node_id}"
    return None


def _ns(final: Mapping[str, Any], key: str) -> float:
    value = final.get(key)
    return (
        value / 1e9 if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0.0
    )


def _count(final: Mapping[str, Any], key: str) -> int:
    value = final.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def sample_of(final: Mapping[str, Any], ttft_s: float) -> Sample:
    """A finished request's final chunk (Ollama form) as a sample."""
    load = final.get("load_duration")
    return Sample(
        ttft_s=ttft_s,
        prompt_tokens=_count(final, "prompt_eval_count"),
        prompt_s=_ns(final, "prompt_eval_duration"),
        gen_tokens=_count(final, "eval_count"),
        gen_s=_ns(final, "eval_duration"),
        load_s=_ns(final, "load_duration") if isinstance(load, int | float) else None,
    )


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summarise(
    node_id: str, model: str, parallel: int, samples: Sequence[Sample], wall_s: float, **meta: Any
) -> BenchResult:
    """Medians over the batch's good samples; prompt speed as total tokens over total time (short prompts
    weigh less); load time the longest seen (the first request of a cold model pays it)."""
    good = [s for s in samples if s.error is None]
    prompt_s = sum(s.prompt_s for s in good)
    gen = [s.gen_tokens / s.gen_s for s in good if s.gen_s > 0 and s.gen_tokens]
    loads = [s.load_s for s in good if s.load_s is not None]
    total_gen = sum(s.gen_tokens for s in good)
    return BenchResult(
        node_id=node_id,
        model=model,
        parallel=parallel,
        ttft_s=_r(statistics.median(s.ttft_s for s in good)) if good else None,
        prompt_tps=_r(sum(s.prompt_tokens for s in good) / prompt_s, 1) if prompt_s > 0 else None,
        gen_tps=_r(statistics.median(gen), 1) if gen else None,
        load_s=_r(max(loads)) if loads else None,
        aggregate_tps=_r(total_gen / wall_s, 1) if total_gen and wall_s > 0 else None,
        requests=len(samples),
        errors=len(samples) - len(good),
        error=next((s.error for s in reversed(samples) if s.error), None),
        **meta,
    )


def priors(results: Iterable[BenchResult]) -> dict[tuple[str, str], BenchResult]:
    """The newest single-request result per (node, model) (the lowest parallelism measured when no single one
    was), as priors for the routing performance model: its ttft_s, prompt_tps, gen_tps and load_s are what
    one request on that node can expect before live traffic says otherwise."""
    best: dict[tuple[str, str], BenchResult] = {}
    for r in results:
        if r.gen_tps is None and r.ttft_s is None:
            continue
        key = (r.node_id, r.model)
        have = best.get(key)
        if have is None or (r.parallel, -r.ts) < (have.parallel, -have.ts):
            best[key] = r
    return best


def feed_priors(latency: LatencyBook, results: Iterable[BenchResult], now: float, samples: int) -> int:
    """Seed the routing performance model (`LatencyBook.seed`) with `priors(results)`; pairs already measured by
    live traffic keep their own numbers. Returns how many were taken."""
    taken = 0
    for (node_id, model), r in priors(results).items():
        perf = prior(now, prompt_rate=r.prompt_tps, gen_rate=r.gen_tps, load_s=r.load_s, samples=samples)
        taken += latency.seed(node_id, model, perf)
    return taken


def ranking(results: Iterable[BenchResult], model: str) -> list[BenchResult]:
    """Single-request results for `model`, fastest generation first (the dashboard's and CLI's table order)."""
    rows = [r for r in priors(results).values() if r.model == model]
    return sorted(rows, key=lambda r: -(r.gen_tps or 0.0))

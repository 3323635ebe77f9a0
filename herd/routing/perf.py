"""The performance model per (node, model) (pure): how fast a node evaluates a prompt, how fast it generates,
what a hot request costs before its first prompt token, how long a cold load takes. Learned from what every
finished request reports (Ollama's `prompt_eval_count`/`prompt_eval_duration`, `eval_count`/`eval_duration`,
`load_duration`; OpenAI nodes' `usage` + `timings`, translated to the same names by
`herd.backends.openai_response`), fed by `herd.routing.latency.LatencyBook.observe` and read by
`herd.routing.estimate` when scoring. Formulas: `docs/routing.md`, "Time to finish".

Each rate is an exponentially weighted mean. An observation weighs at least `ALPHA`, more when the previous
one is old (`1 - 2^(-gap / HALF_LIFE)`), so a node that got slower (thermal throttling, another tenant) is
noticed after a handful of requests, or at the first one after a quiet spell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.3  # least weight of a new observation
HALF_LIFE = 120.0  # s: an estimate this old counts half against a new observation
CONTENTION = 0.3  # each other request running on the node slows generation by this share (normalisation)


@dataclass(frozen=True, slots=True)
class Sample:
    """What one finished request says about its node. Zero means "not reported"."""

    at: float  # when it finished (any monotonic clock; only differences matter)
    ttft_s: float
    prompt_tokens: int = 0
    prompt_s: float = 0.0  # prompt evaluation time
    completion_tokens: int = 0
    gen_s: float = 0.0  # generation time (first to last token)
    load_s: float = 0.0  # model load time (a cold start)
    concurrency: int = 1  # requests running on (node, model) when it started, itself included


@dataclass(frozen=True, slots=True)
class Perf:
    """What a node is expected to do for a model. None: never observed."""

    at: float = 0.0
    prompt_rate: float | None = None  # prompt tokens evaluated per second
    gen_rate: float | None = None  # tokens per second of one request running alone
    overhead_s: float | None = None  # time to first token that prompt evaluation does not explain (hot)
    load_s: float | None = None  # seconds a cold load took
    n: int = 0  # requests observed


def _mix(old: float | None, new: float, weight: float) -> float:
    return new if old is None else old + weight * (new - old)


def weight(gap: float) -> float:
    """Weight of a new observation `gap` seconds after the last one."""
    return max(ALPHA, 1.0 - math.pow(2.0, -max(0.0, gap) / HALF_LIFE))


def update(old: Perf | None, s: Sample) -> Perf:
    """`old` with sample `s` folded in."""
    p = old or Perf()
    w = weight(s.at - p.at) if p.n else 1.0
    prompt_rate, gen_rate, overhead, load = p.prompt_rate, p.gen_rate, p.overhead_s, p.load_s
    prompt_s = s.prompt_s
    if s.prompt_tokens > 0 and s.prompt_s > 0:
        prompt_rate = _mix(prompt_rate, s.prompt_tokens / s.prompt_s, w)
    elif s.prompt_tokens > 0 and prompt_rate:
        prompt_s = s.prompt_tokens / prompt_rate
    if s.completion_tokens > 0 and s.gen_s > 0:
        alone = s.completion_tokens / s.gen_s * (1.0 + CONTENTION * (max(1, s.concurrency) - 1))
        gen_rate = _mix(gen_rate, alone, w)
    if s.load_s > 0.5:  # a real load, not the few ms Ollama reports for a hot model
        load = _mix(load, s.load_s, w)
    if s.ttft_s > 0:
        hot_ttft = max(0.0, s.ttft_s - (s.load_s if s.load_s > 0.5 else 0.0) - prompt_s)
        overhead = _mix(overhead, hot_ttft, w)
    return Perf(  # every field: cheaper than dataclasses.replace, once per finished request
        at=s.at,
        prompt_rate=prompt_rate,
        gen_rate=gen_rate,
        overhead_s=overhead,
        load_s=load,
        n=p.n + 1,
    )


def prior(
    now: float,
    *,
    prompt_rate: float | None,
    gen_rate: float | None,
    load_s: float | None,
    samples: int,
) -> Perf:
    """A performance model from a fleet benchmark (`herd.insight`): what one request alone can expect before
    live traffic says otherwise. It counts as `samples` observations (so the node is not explored again), and is
    dated a day back, so the first live observation weighs (almost) fully against it."""
    return Perf(
        at=now - 86_400.0,
        prompt_rate=prompt_rate if prompt_rate and prompt_rate > 0 else None,
        gen_rate=gen_rate if gen_rate and gen_rate > 0 else None,
        load_s=load_s if load_s and load_s > 0.5 else None,
        n=samples,
    )

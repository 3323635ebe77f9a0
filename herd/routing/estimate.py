"""Time to finish (pure): how long a request would take on one node, from the performance model
(`herd.routing.perf`), the node's queue and whether the model is loaded. `herd.routing.score.Scorer` turns it
into the `wait` signal; the proxy sizes the request with `request_size` first. Formulas: `docs/routing.md`,
"Time to finish".

    finish = queue + load + overhead + (prompt_tokens - cached_tokens) / prompt_rate + output_tokens / gen_rate(c)

Prompt tokens are estimated as characters / `CHARS_PER_TOKEN` (the request has not been tokenised yet; the
rates are learned from the node's real counts, so the estimate only has to be consistent across nodes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from herd.routing.latency import LatencyBook, LatencyStats
from herd.routing.perf import CONTENTION, Perf
from herd.routing.signals import Facts, ScoringConfig, _Static

CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Estimate:
    queue: float  # waiting for a slot on the node
    load: float  # loading the model first
    service: float  # first prompt token to last output token
    saved: float = 0.0  # prompt evaluation the node's cache saves (affinity)
    measured: bool = False  # from this node's own performance model (else defaults)

    @property
    def total(self) -> float:
        return self.queue + self.load + self.service


def _text_len(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):  # OpenAI/Anthropic content parts
        return sum(_text_len(p.get("text") if isinstance(p, dict) else p) for p in value)
    return 0


def message_chars(message: dict[str, Any]) -> int:
    """Characters of prompt text in one chat message."""
    return _text_len(message.get("content"))


def prompt_chars(body: dict[str, Any]) -> int:
    """Characters of prompt text in a chat or generate body (system, messages, prompt)."""
    n = _text_len(body.get("system")) + _text_len(body.get("prompt"))
    messages = body.get("messages")
    if isinstance(messages, list):
        n += sum(_text_len(m.get("content")) for m in messages if isinstance(m, dict))
    context = body.get("context")
    if isinstance(context, list):
        n += CHARS_PER_TOKEN * len(context)  # Ollama's context array is tokens already
    return n


def request_size(body: dict[str, Any]) -> tuple[int, int | None]:
    """(estimated prompt tokens, the request's own output limit or None)."""
    limit = None
    options = body.get("options")
    for raw in (
        options.get("num_predict") if isinstance(options, dict) else None,
        body.get("max_tokens"),
        body.get("max_completion_tokens"),
        body.get("max_output_tokens"),
    ):
        if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
            limit = raw
            break
    return prompt_chars(body) // CHARS_PER_TOKEN, limit


def expected_output(limit: int | None, recent_median: int | None, default: int) -> int:
    """Output tokens to plan for: the model's recent median capped by the request's limit; the limit alone
    before anything was observed; else `default`."""
    if recent_median is not None:
        return min(limit, recent_median) if limit else recent_median
    return limit or default


def finish_time(
    perf: Perf | None,
    *,
    duration: float,
    load_cost: float,
    hot: bool,
    running: int,
    cap: int,
    prompt_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
) -> Estimate:
    """Predicted seconds until the request's last token on one node.

    `duration` is the node's p75 request duration (or the default): requests already queued ahead are
    assumed to take that long each, spread over `cap` slots. Without a generation rate for the node the
    request itself is assumed to take `duration` too."""
    ahead = max(0, running - cap + 1)
    queue = ahead * duration / max(1, cap)
    load = load_cost
    if not hot and perf is not None and perf.load_s is not None:
        load = perf.load_s
    if perf is None or perf.gen_rate is None:
        return Estimate(queue, load, duration)
    together = min(running, cap - 1) + 1  # requests running while this one does, itself included
    gen = output_tokens * (1.0 + CONTENTION * (together - 1)) / perf.gen_rate
    prompt = saved = 0.0
    if perf.prompt_rate:
        cached = min(cached_tokens, prompt_tokens)
        prompt = (prompt_tokens - cached) / perf.prompt_rate
        saved = cached / perf.prompt_rate
    return Estimate(queue, load, (perf.overhead_s or 0.0) + prompt + gen, saved, measured=True)


def request_facts(
    body: dict[str, Any],
    model: str,
    needs: frozenset[str],
    book: LatencyBook,
    cfg: ScoringConfig,
    cached: Mapping[str, int] | None = None,
) -> Facts:
    """What scoring needs to know about a request: context size, capabilities, prompt and output sizes, and
    (affinity) how much of its prompt each node already holds."""
    options = body.get("options")
    num_ctx = options.get("num_ctx") if isinstance(options, dict) else None
    prompt, limit = request_size(body)
    return Facts(
        model,
        num_ctx if isinstance(num_ctx, int) else None,
        prompt_tokens=prompt,
        needs=needs,
        output_tokens=expected_output(limit, book.model_output(model), cfg.default_output),
        cached=cached if cached is not None else {},
    )


Scored = tuple[
    _Static, Estimate, float, float, bool
]  # a candidate's static part, estimate, queue, context, full


def explore(
    scored: list[Scored], latency: Mapping[tuple[str, str], LatencyStats], model: str, cfg: ScoringConfig
) -> list[Scored]:
    """Nodes not yet measured on `model` (fewer than `explore_samples` observations): a hot one's service
    time is at most `explore_discount` x the best measured candidate's, so it is tried (and measured) a
    few times before its own numbers decide; a cold one's is the best measured (no bonus for a load)."""
    measured = [
        est.service
        for st, est, *_ in scored
        if est.measured and _samples(latency, st.node.node_id, model) >= cfg.explore_samples
    ]
    if not measured:
        return scored
    best = min(measured)
    out = []
    for row in scored:
        st, est = row[0], row[1]
        if _samples(latency, st.node.node_id, model) < cfg.explore_samples:
            service = min(est.service, best * cfg.explore_discount) if st.hot else best
            row = (st, Estimate(est.queue, est.load, service, est.saved), *row[2:])
        out.append(row)
    return out


def _samples(latency: Mapping[tuple[str, str], LatencyStats], node_id: str, model: str) -> int:
    stats = latency.get((node_id, model))
    return stats.perf.n if stats is not None and stats.perf is not None else 0

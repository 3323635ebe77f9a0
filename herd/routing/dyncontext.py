"""Dynamic context (opt-in, `--dynamic-context`): size `num_ctx` per model from the prompt lengths the router
has seen, so long prompts are not silently truncated and short ones do not pay for a huge context.

    num_ctx = max(model default, request's own num_ctx, next power of two >= p99(prompt tokens) * MARGIN)

capped at `MAX_CTX` (never below the request's own value), and only once `MIN_SAMPLES` prompts of the model
were seen. The recorder feeds `ContextBook.observe` (a sink: the prompt tokens of each successful request);
the proxy asks `ContextBook.plan_for` before routing and records the value it sent on the request (traces
column `num_ctx`). `size_context` is the pure rule."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import replace

from herd.routing.policies import Plan
from herd.routing.record import RequestRecord

DEFAULT_CTX = 4096  # Ollama's context when a request sets none
MARGIN = 1.25
MIN_SAMPLES = 20
MAX_CTX = 131072
WINDOW = 500  # prompts remembered per model
MAX_MODELS = 256


def p99(values: Sequence[int]) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def size_context(
    lengths: Sequence[int],
    *,
    requested: int | None = None,
    default: int = DEFAULT_CTX,
    margin: float = MARGIN,
    min_samples: int = MIN_SAMPLES,
    cap: int = MAX_CTX,
) -> int | None:
    """The `num_ctx` to send, or None to leave the request as it is (too few samples, or nothing above what
    it would get anyway)."""
    floor = max(default, requested or 0)
    if len(lengths) < min_samples:
        return None
    want = max(1, int(p99(lengths) * margin + 0.999))
    sized = min(1 << (want - 1).bit_length(), cap)
    return sized if sized > floor else None


class ContextBook:
    """Recent prompt lengths per model (bounded: `WINDOW` per model, `MAX_MODELS` models, least recent out)."""

    def __init__(self, window: int = WINDOW, max_models: int = MAX_MODELS) -> None:
        self.window = window
        self.max_models = max_models
        self.lengths: OrderedDict[str, deque[int]] = OrderedDict()

    def observe(self, rec: RequestRecord) -> None:
        """Recorder sink: a successful request's prompt tokens (as the backend counted them)."""
        if rec.status != 200 or not isinstance(rec.prompt_tokens, int) or rec.prompt_tokens <= 0:
            return
        seen = self.lengths.get(rec.model)
        if seen is None:
            seen = self.lengths[rec.model] = deque(maxlen=self.window)
            while len(self.lengths) > self.max_models:
                self.lengths.popitem(last=False)
        self.lengths.move_to_end(rec.model)
        seen.append(rec.prompt_tokens)

    def plan_for(self, plan: Plan) -> tuple[Plan, int | None]:
        """`plan` with `options.num_ctx` sized for its model, and the value set (None: left unchanged)."""
        options = plan.body.get("options")
        options = options if isinstance(options, dict) else {}
        own = options.get("num_ctx")
        own = own if isinstance(own, int) and not isinstance(own, bool) else None
        sized = size_context(tuple(self.lengths.get(plan.requested, ())), requested=own)
        if sized is None:
            return plan, None
        return replace(plan, body={**plan.body, "options": {**options, "num_ctx": sized}}), sized

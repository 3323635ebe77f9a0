"""Prometheus metrics: counters and histograms fed by the recorder (one call per finished request, no I/O),
gauges computed at scrape time from the fleet snapshot, slots and holding queue. `render` writes the text
exposition format 0.0.4 served at `GET /metrics`."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import accumulate

from herd.routing.record import RequestRecord
from herd.validate import storable

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    def esc(v: str) -> str:
        return storable(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    inner = ",".join(f'{k}="{esc(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


@dataclass
class Histogram:
    buckets: tuple[float, ...] = LATENCY_BUCKETS  # ascending upper edges
    per_bucket: list[int] = field(default_factory=list)  # values in (previous edge, edge]; none past the last
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        if not self.per_bucket:
            self.per_bucket = [0] * len(self.buckets)
        i = bisect_left(self.buckets, value)  # the first edge >= value
        if i < len(self.per_bucket) and value == value:  # NaN is below no edge
            self.per_bucket[i] += 1
        self.total += value
        self.n += 1

    def counts(self) -> list[int]:
        """Observations <= each edge (Prometheus' cumulative `le` buckets)."""
        return list(accumulate(self.per_bucket))


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.tokens: dict[tuple[str, str], int] = {}
        self.duration: dict[str, Histogram] = {}
        self.ttft: dict[str, Histogram] = {}
        self.retries = 0
        self.fallbacks = 0
        self.unexpected_errors = 0  # exceptions no handler expected, answered 500 (each one is a bug)
        self.rejected_trace_rows = 0  # trace rows SQLite refused (the rest of their batch was kept)

    def count_rejected_row(self) -> None:
        self.rejected_trace_rows += 1

    def count_unexpected(self) -> None:
        self.unexpected_errors += 1

    def observe(self, rec: RequestRecord) -> None:
        """Recorder sink."""
        key = (rec.model, rec.node_id or "none", str(rec.status))
        self.requests[key] = self.requests.get(key, 0) + 1
        self.retries += rec.retries
        self.fallbacks += rec.fallback is not None
        for kind, count in (("prompt", rec.prompt_tokens), ("completion", rec.completion_tokens)):
            if count:
                self.tokens[(rec.model, kind)] = self.tokens.get((rec.model, kind), 0) + count
        if rec.status == 200 and rec.duration is not None:
            _series(self.duration, rec.model).observe(rec.duration)
        if rec.ttft is not None:
            _series(self.ttft, rec.model).observe(rec.ttft)


def _series(series: dict[str, Histogram], model: str) -> Histogram:
    """The model's histogram (made on its first observation; `setdefault` would build one every call)."""
    h = series.get(model)
    if h is None:
        h = series[model] = Histogram()
    return h


def _histogram(out: list[str], name: str, series: dict[str, Histogram]) -> None:
    out.append(f"# TYPE {name} histogram")
    for model, h in sorted(series.items()):
        for edge, count in zip(h.buckets, h.counts(), strict=True):
            out.append(f"{name}_bucket{_labels([('model', model), ('le', str(edge))])} {count}")
        out.append(f"{name}_bucket{_labels([('model', model), ('le', '+Inf')])} {h.n}")
        out.append(f"{name}_sum{_labels([('model', model)])} {h.total}")
        out.append(f"{name}_count{_labels([('model', model)])} {h.n}")


def render(
    m: Metrics,
    *,
    node_states: dict[str, str],
    in_flight: dict[tuple[str, str], int],
    queue_depths: dict[str, int],
) -> str:
    out = [
        "# HELP herd_requests_total Proxied requests by model, node and status.",
        "# TYPE herd_requests_total counter",
    ]
    for (model, node, status), n in sorted(m.requests.items()):
        out.append(
            f"herd_requests_total{_labels([('model', model), ('node', node), ('status', status)])} {n}"
        )
    out += ["# HELP herd_tokens_total Tokens reported by nodes.", "# TYPE herd_tokens_total counter"]
    for (model, kind), n in sorted(m.tokens.items()):
        out.append(f"herd_tokens_total{_labels([('model', model), ('kind', kind)])} {n}")
    out.append("# HELP herd_request_duration_seconds Arrival to end of response, successful requests.")
    _histogram(out, "herd_request_duration_seconds", m.duration)
    out.append("# HELP herd_ttft_seconds Arrival to the node's first byte.")
    _histogram(out, "herd_ttft_seconds", m.ttft)
    out += ["# TYPE herd_retries_total counter", f"herd_retries_total {m.retries}"]
    out += ["# TYPE herd_fallbacks_total counter", f"herd_fallbacks_total {m.fallbacks}"]
    out += [
        "# HELP herd_unexpected_errors_total Exceptions answered with a 500 (each one is a bug to report).",
        "# TYPE herd_unexpected_errors_total counter",
        f"herd_unexpected_errors_total {m.unexpected_errors}",
        "# HELP herd_trace_rows_rejected_total Trace rows the store refused; the rest of their batch was kept.",
        "# TYPE herd_trace_rows_rejected_total counter",
        f"herd_trace_rows_rejected_total {m.rejected_trace_rows}",
    ]
    out += ["# HELP herd_queue_depth Requests waiting for a slot.", "# TYPE herd_queue_depth gauge"]
    for model, depth in sorted(queue_depths.items()):
        out.append(f"herd_queue_depth{_labels([('model', model)])} {depth}")
    out += ["# HELP herd_slots_in_use Requests running per node and model.", "# TYPE herd_slots_in_use gauge"]
    for (node, model), n in sorted(in_flight.items()):
        out.append(f"herd_slots_in_use{_labels([('node', node), ('model', model)])} {n}")
    out += ["# HELP herd_node_up 1 per node in its current state.", "# TYPE herd_node_up gauge"]
    for node, state in sorted(node_states.items()):
        out.append(f"herd_node_up{_labels([('node', node), ('state', state)])} 1")
    return "\n".join(out) + "\n"

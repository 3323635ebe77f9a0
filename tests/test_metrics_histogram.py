"""Latency histograms count each value in one bucket (found by bisection) and render Prometheus' cumulative `le`
buckets: the exposition must be what counting `value <= edge` for every edge gives."""

from __future__ import annotations

import math
import random

from herd.metrics import LATENCY_BUCKETS, Histogram, Metrics, render
from herd.routing.record import RequestRecord


def le_counts(values: list[float]) -> list[int]:
    """Per edge, how many values are <= it (NaN is <= nothing)."""
    return [sum(1 for v in values if v <= edge) for edge in LATENCY_BUCKETS]


def test_cumulative_counts_are_values_at_or_below_each_edge() -> None:
    rnd = random.Random(5)
    special = [*LATENCY_BUCKETS, 0, -1.0, 0.0, 300.0001, math.inf, -math.inf, math.nan, 1e-9, 2.4999999]
    for _ in range(200):
        values = [
            rnd.choice(special) if rnd.random() < 0.4 else rnd.uniform(0, 400)
            for _ in range(rnd.randrange(1, 60))
        ]
        h = Histogram()
        for v in values:
            h.observe(v)
        assert h.counts() == le_counts(values)
        assert h.n == len(values)


def test_render_shows_the_le_counts() -> None:
    m = Metrics()
    durations = [0.05, 0.07, 1, 2.5, 400.0, math.nan]
    for d in durations:
        rec = RequestRecord(
            0.0, 0.0, "ollama", "/api/chat", "m", "m", False, node_id="n1", ttft=d, duration=d
        )
        m.observe(rec)
    text = render(m, node_states={}, in_flight={}, queue_depths={})
    lines = [ln for ln in text.splitlines() if ln.startswith("herd_request_duration_seconds_bucket")]
    want = [*le_counts(durations), len(durations)]
    edges = [*map(str, LATENCY_BUCKETS), "+Inf"]
    assert lines == [
        f'herd_request_duration_seconds_bucket{{model="m",le="{edge}"}} {count}'
        for edge, count in zip(edges, want, strict=True)
    ]
    assert lines[0].endswith(" 1") and lines[4].endswith(" 3") and lines[-2].endswith(" 4")

"""The latency book keeps each window's values sorted as observations arrive and leave; its p75s must be exactly
what sorting the whole window gives (`herd.routing.latency`)."""

from __future__ import annotations

import random
from collections import deque

from herd.routing.latency import WINDOW, LatencyBook, effective_parallel, p75


def sorted_summary(window: deque[tuple[float, float, float]]) -> tuple[float, float, float]:
    """The summary as it was computed before: three sorts of the whole window."""
    return (
        p75([o[0] for o in window]),
        sorted(o[1] for o in window)[len(window) // 4],
        p75([o[2] for o in window]),
    )


def same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Equal and the same objects' kinds: 0.0 is not -0.0, 1 is not 1.0, NaN is NaN."""
    return [repr(x) for x in a] == [repr(x) for x in b]


def test_incremental_p75s_equal_sorting_the_window() -> None:
    rnd = random.Random(7)
    pool = [0.0, -0.0, 1, 1.0, 0.5, 2.5, 2.5, float("inf")]  # duplicates, equal values of different kinds

    def value() -> float:
        r = rnd.random()
        if r < 0.3:
            return rnd.choice(pool)
        if r < 0.32:
            return float("nan")  # no order: the window is sorted as before while it holds one
        return round(rnd.uniform(0, 5), rnd.choice([0, 1, 3]))

    for window in (1, 2, 3, 7, WINDOW):
        book = LatencyBook(window)
        shadow: dict[str, deque[tuple[float, float, float]]] = {}
        for step in range(3000):
            model = rnd.choice(["a", "b"])
            obs = (value(), value(), value())
            book.observe("n1", model, *obs, at=float(step))
            shadow.setdefault(model, deque(maxlen=window)).append(obs)
            stats = book.stats("n1", model)
            assert stats is not None and stats.n == len(shadow[model])
            want = sorted_summary(shadow[model])
            assert same((stats.ttft_s, stats.tokens_per_s, stats.duration_s), want), (window, step)


def test_a_window_without_nan_reads_the_sorted_values_again() -> None:
    book = LatencyBook(3)
    book.observe("n1", "m", float("nan"), 1.0, 1.0)
    for ttft in (3.0, 1.0, 2.0):  # the NaN has left the window
        book.observe("n1", "m", ttft, 1.0, 1.0)
    stats = book.stats("n1", "m")
    assert stats is not None and stats.ttft_s == 3.0 and stats.n == 3
    assert book._obs[("n1", "m")].ordered == ([1.0, 2.0, 3.0], [1.0] * 3, [1.0] * 3)  # kept sorted again
    book.observe("n1", "m", 0.5, 1.0, 1.0)
    stats = book.stats("n1", "m")
    assert stats is not None and stats.ttft_s == 2.0


def test_speed_medians_output_median_and_effective_parallel_track_the_old_formulas() -> None:
    """Medians kept as observations come read what sorting the recent values gave; the remembered effective
    parallelism follows each new speed observation."""
    rnd = random.Random(7)
    book = LatencyBook(5)
    speeds: dict[int, deque[float]] = {}
    outputs: deque[int] = deque(maxlen=5)
    for step in range(4000):
        level = rnd.randint(1, 6)
        tps = rnd.choice([0.0, rnd.choice([10.0, 12.5, 20.0]), round(rnd.uniform(1, 40), rnd.choice([0, 2]))])
        tokens = rnd.choice([0, rnd.randint(1, 300)])
        book.observe("n1", "m", 0.1, tps, 1.0, level, at=float(step), completion_tokens=tokens, gen_s=1.0)
        if tps > 0:
            speeds.setdefault(level, deque(maxlen=20)).append(tps)
        if tokens > 0:
            outputs.append(tokens)
        old = {c: sorted(v)[len(v) // 2] for c, v in speeds.items() if v}
        assert book.speed_by_concurrency("n1", "m") == old
        assert book.model_output("m") == (sorted(outputs)[len(outputs) // 2] if outputs else None)
        for reported in (1, 4, 8):
            want = effective_parallel(old, reported) if old else reported
            assert book.effective_parallel("n1", "m", reported) == want
            assert book.effective_parallel("n1", "m", reported) == want  # remembered

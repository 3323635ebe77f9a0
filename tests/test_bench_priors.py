"""Fleet benchmarks feed the routing performance model as priors (issue 15 → issue 12): a node the benchmark
found slow is not explored before live traffic, a benchmark never overrides live numbers, and the first live
observation replaces the prior."""

from __future__ import annotations

from test_scoring import M, node, rank, snap_of

from herd.insight.bench import BenchResult, feed_priors
from herd.routing.latency import LatencyBook
from herd.routing.score import Facts, ScoringConfig

SAMPLES = ScoringConfig().explore_samples


def result(node_id: str, gen: float, parallel: int = 1) -> BenchResult:
    return BenchResult(node_id, M, parallel, 0.2, 800.0, gen, 3.0)


def test_priors_decide_before_any_live_request() -> None:
    book = LatencyBook()
    snap = snap_of(node("a-slow", loaded=True), node("z-fast", loaded=True))
    # without priors both are unmeasured: the node id decides
    assert rank(snap, Facts(M), cap=4, latency=book.all)[0].node.node_id == "a-slow"
    taken = feed_priors(book, [result("a-slow", 10.0), result("z-fast", 60.0)], now=100.0, samples=SAMPLES)
    assert taken == 2
    ranked = rank(snap, Facts(M, output_tokens=200), cap=4, latency=book.all)
    assert [c.node.node_id for c in ranked] == ["z-fast", "a-slow"]
    perf = book.all[("z-fast", M)].perf
    assert perf is not None and perf.gen_rate == 60.0 and perf.prompt_rate == 800.0 and perf.load_s == 3.0


def test_live_numbers_win_over_a_benchmark() -> None:
    book = LatencyBook()
    book.observe("a", M, 0.1, 30.0, 3.0, at=50.0, completion_tokens=90, gen_s=3.0)
    assert feed_priors(book, [result("a", 90.0)], now=100.0, samples=SAMPLES) == 0
    stats = book.all[("a", M)]
    assert stats.perf is not None and stats.perf.gen_rate == 30.0


def test_the_first_live_observation_replaces_the_prior() -> None:
    book = LatencyBook()
    feed_priors(book, [result("a", 90.0)], now=1000.0, samples=SAMPLES)
    assert book.model_duration(M) is None  # a prior is no duration observation
    book.observe("a", M, 0.1, 30.0, 3.0, at=1000.0, completion_tokens=90, gen_s=3.0)
    perf = book.all[("a", M)].perf
    assert perf is not None and perf.gen_rate is not None and abs(perf.gen_rate - 30.0) < 0.1
    assert perf.n == SAMPLES + 1

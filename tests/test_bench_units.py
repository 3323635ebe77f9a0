"""Benchmark deciders on fixed inputs: request validation, targets, when to yield, samples, results, priors."""

from __future__ import annotations

import pytest
from conftest import heartbeat_json

from herd.errors import BadRequest, NotFound
from herd.fleet.heartbeat import parse_heartbeat
from herd.fleet.state import FleetSnapshot, apply_heartbeat
from herd.insight import prompts
from herd.insight.bench import (
    BenchRequest,
    BenchResult,
    Sample,
    parse_request,
    priors,
    ranking,
    sample_of,
    summarise,
    targets,
    yield_reason,
)

A, B = "llama3.2:3b", "qwen3:8b"


def snapshot(**extra: dict) -> FleetSnapshot:
    snap = FleetSnapshot()
    nodes = {"a": ([A, B], [A]), "b": ([A], []), "c": ([A, B], [B])}
    for node_id, (models, loaded) in nodes.items():
        body = heartbeat_json(node_id, f"http://{node_id}:11434", models, loaded, **extra.get(node_id, {}))
        snap = apply_heartbeat(snap, parse_heartbeat(body), 0.0)
    return snap


def test_parse_request_defaults_and_validation() -> None:
    assert parse_request({}) == BenchRequest(None, None, 4)
    assert parse_request(None) == BenchRequest(None, None, 4)
    got = parse_request({"nodes": ["a", "a"], "models": ["llama3.2"], "parallel": 2})
    assert got == BenchRequest(("a",), ("llama3.2:latest",), 2)
    for bad in (
        {"parallel": 0},
        {"parallel": 17},
        {"parallel": True},
        {"nodes": []},
        {"models": [""]},
        {"x": 1},
    ):
        with pytest.raises(BadRequest):
            parse_request(bad)


def test_targets_default_to_every_hot_model_on_every_serving_node() -> None:
    snap = snapshot(c={"draining": True})
    assert targets(snap, BenchRequest()) == [("a", A)]  # b has nothing loaded, c is draining
    assert targets(snapshot(), BenchRequest(), paused={"a"}) == [("c", B)]
    assert targets(snapshot(), BenchRequest(models=(B,))) == [("a", B), ("c", B)]
    assert targets(snapshot(), BenchRequest(nodes=("b",), models=(A,))) == [("b", A)]
    with pytest.raises(NotFound):
        targets(snap, BenchRequest(nodes=("ghost",)))
    with pytest.raises(NotFound):
        targets(snap, BenchRequest(models=("ghost:1b",)))
    with pytest.raises(BadRequest, match="not serving"):
        targets(snap, BenchRequest(nodes=("c",)))
    with pytest.raises(BadRequest, match="nothing to benchmark"):
        targets(snap, BenchRequest(nodes=("b",)))


def test_yield_to_waiting_requests_and_to_real_requests_on_the_node() -> None:
    assert yield_reason(0, {"a": 2}, {"a": 2}, "a") is None  # only the benchmark's own
    assert yield_reason(0, {}, {}, "a") is None
    assert "waiting" in (yield_reason(1, {}, {}, "a") or "")
    assert "running on a" in (yield_reason(0, {"a": 3}, {"a": 2}, "a") or "")
    assert yield_reason(0, {"b": 3}, {}, "a") is None  # another node's traffic is not in the way


def test_sample_from_the_nodes_own_counters() -> None:
    final = {
        "done": True,
        "prompt_eval_count": 200,
        "prompt_eval_duration": 100_000_000,
        "eval_count": 50,
        "eval_duration": 2_000_000_000,
        "load_duration": 1_500_000_000,
    }
    s = sample_of(final, 0.4)
    assert (s.prompt_tokens, s.prompt_s, s.gen_tokens, s.gen_s, s.load_s) == (200, 0.1, 50, 2.0, 1.5)
    openai_node = sample_of(
        {"done": True, "prompt_eval_count": 9, "eval_count": 3, "eval_duration": "x"}, 0.2
    )
    assert openai_node.load_s is None and openai_node.gen_s == 0.0 and openai_node.prompt_s == 0.0


def test_summarise_medians_totals_and_errors() -> None:
    samples = [
        Sample(0.5, 100, 0.1, 40, 2.0, 1.2),  # 20 tok/s, cold
        Sample(0.3, 300, 0.3, 40, 1.0, 0.01),  # 40 tok/s
        Sample(0.2, 10, 0.01, 30, 1.0, 0.01),  # 30 tok/s
        Sample(9.0, error="boom"),
    ]
    r = summarise("a", A, 1, samples, wall_s=5.0, prompt_set=prompts.VERSION)
    assert (r.ttft_s, r.gen_tps, r.load_s, r.requests, r.errors, r.error) == (0.3, 30.0, 1.2, 4, 1, "boom")
    assert (
        r.prompt_tps == round(410 / 0.41, 1) and r.aggregate_tps == 22.0 and r.prompt_set == prompts.VERSION
    )
    empty = summarise("a", A, 2, [Sample(1.0, error="down")], wall_s=1.0)
    assert (empty.ttft_s, empty.gen_tps, empty.prompt_tps, empty.aggregate_tps) == (None, None, None, None)


def result(node: str, model: str, parallel: int, gen: float | None, ts: float) -> BenchResult:
    return BenchResult(node, model, parallel, 0.1 if gen else None, 900.0, gen, None, ts=ts)


def test_priors_take_the_newest_single_request_result() -> None:
    rows = [
        result("a", A, 1, 30.0, 1.0),
        result("a", A, 4, 20.0, 2.0),
        result("a", A, 1, 35.0, 3.0),
        result("b", A, 4, 12.0, 1.0),  # only measured at 4: the lowest level there is
        result("c", A, 1, None, 5.0),  # every request failed: no prior
    ]
    best = priors(rows)
    assert set(best) == {("a", A), ("b", A)}
    assert best[("a", A)].gen_tps == 35.0 and best[("b", A)].parallel == 4
    assert [r.node_id for r in ranking(rows, A)] == ["a", "b"]

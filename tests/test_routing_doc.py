"""docs/routing.md must state the weights and defaults the code uses."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from herd.routing.score import SIGNALS, ScoringConfig, Weights

DOC = (Path(__file__).parent.parent / "docs" / "routing.md").read_text()


def test_signal_weights_match_the_doc() -> None:
    rows = dict(re.findall(r"^\| (\w+) \| ([0-9.]+) \|", DOC, re.MULTILINE))
    assert {k: float(v) for k, v in rows.items() if k in SIGNALS} == {
        f.name: getattr(Weights(), f.name) for f in fields(Weights)
    }
    assert set(SIGNALS) == {f.name for f in fields(Weights)}


def test_defaults_match_the_doc() -> None:
    cfg = ScoringConfig()
    for name in (
        "warm_window",
        "warm_value",
        "critical_memory",
        "fit_margin",
        "default_duration",
        "cold_load",
        "context_reload",
    ):
        match = re.search(rf"^\| {name} \| ([0-9.]+)", DOC, re.MULTILINE)
        assert match, name
        assert float(match.group(1)) == getattr(cfg, name), name


def test_judgement_defaults_match_the_doc() -> None:
    from herd.routing import affinity, estimate, perf

    cfg = ScoringConfig()
    values = {
        "default_output": cfg.default_output,
        "explore_samples": cfg.explore_samples,
        "explore_discount": cfg.explore_discount,
        "wait_floor": cfg.wait_floor,
        "ALPHA": perf.ALPHA,
        "HALF_LIFE": perf.HALF_LIFE,
        "CONTENTION": perf.CONTENTION,
        "CHARS_PER_TOKEN": estimate.CHARS_PER_TOKEN,
        "BLOCK": affinity.BLOCK,
        "affinity_entries": affinity.ENTRIES,
        "affinity_ttl": affinity.TTL,
    }
    for name, value in values.items():
        match = re.search(rf"^\| {name} \| ([0-9.]+)", DOC, re.MULTILINE)
        assert match, name
        assert float(match.group(1)) == value, name


def test_the_worked_time_to_finish_example_is_what_the_code_computes() -> None:
    from herd.routing.estimate import finish_time
    from herd.routing.perf import Perf

    stated = [float(x) for x in re.findall(r"\*\*([0-9.]+) s\*\*", DOC.split("## 5. Time to finish")[1])]
    fast = Perf(prompt_rate=1000.0, gen_rate=50.0, overhead_s=0.2, n=5)
    slow = Perf(prompt_rate=1000.0, gen_rate=10.0, overhead_s=0.2, n=5)
    common = dict(
        duration=5.0, load_cost=0.0, hot=True, running=0, cap=4, prompt_tokens=2000, output_tokens=100
    )
    computed = [
        finish_time(fast, **common).total,  # type: ignore[arg-type]
        finish_time(fast, cached_tokens=1500, **common).total,  # type: ignore[arg-type]
        finish_time(slow, **common).total,  # type: ignore[arg-type]
    ]
    assert stated[:3] == [round(c, 1) for c in computed]
    ratio = re.search(r"signal is `\(4\.2 \+ 0\.1\) / \(12\.2 \+ 0\.1\)` = ([0-9.]+)", DOC)
    floor = ScoringConfig().wait_floor
    assert ratio and float(ratio.group(1)) == round((computed[0] + floor) / (computed[2] + floor), 2)


def test_the_doc_names_the_estimate_terms_the_code_uses() -> None:
    section = DOC.split("## 5. Time to finish")[1].split("## 6.")[0]
    for term in ("prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration", "load_duration"):
        assert term in section, term

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

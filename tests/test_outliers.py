"""Outlier ejection and the commit point: pure decisions on fixed inputs (herd.routing.outliers, .commit)."""

from __future__ import annotations

import json

from herd.routing import commit
from herd.routing.outliers import (
    HEALTHY,
    OutlierConfig,
    Outliers,
    eject,
    is_outlier,
    on_outcome,
    threshold,
)

CFG = OutlierConfig()


def feed(o: Outliers, node: str, pattern: str, start: float = 0.0, step: float = 0.1) -> float:
    """Outcomes for `node` from a string: "x" a failure, "." a success; returns the time after the last."""
    t = start
    for c in pattern:
        o.attempt(node, t)
        o.outcome(node, c == "x", t)
        t += step
    return t


def test_threshold_is_the_larger_of_the_floor_and_twice_the_fleet() -> None:
    assert threshold((0, 0), CFG) == 0.2
    assert threshold((1, 100), CFG) == 0.2
    assert threshold((30, 100), CFG) == 0.6
    assert is_outlier((3, 10), (0, 50), CFG)  # 30 % against a clean fleet
    assert not is_outlier((2, 4), (0, 50), CFG)  # two failures are not enough evidence
    assert not is_outlier((3, 10), (30, 100), CFG)  # everyone fails this much: no outlier
    assert not is_outlier((3, 20), (0, 50), CFG)  # 15 % is under the 20 % floor


def test_a_node_failing_a_third_is_ejected_and_healthy_ones_are_not() -> None:
    o = Outliers()
    feed(o, "good", "." * 40)
    feed(o, "meh", "....x" * 8)  # 20 %: at the floor, not above it
    t = feed(o, "bad", "..x..x..x")
    assert o.ejected(t) == {"bad"}
    assert o.state("bad").level == 1 and o.state("bad").until == t - 0.1 + 10.0


def test_backoff_doubles_while_it_keeps_failing_up_to_the_cap() -> None:
    s = HEALTHY
    spans = []
    for _ in range(8):
        s = eject(s, 100.0, CFG)
        assert s.until is not None
        spans.append(s.until - 100.0)
    assert spans == [10, 20, 40, 80, 160, 300, 300, 300]


def test_probe_success_returns_it_and_failure_ejects_longer() -> None:
    o = Outliers()
    t = feed(o, "bad", "xxx")
    assert o.ejected(t) == {"bad"}
    t += 10.0
    assert o.ejected(t) == frozenset()  # the ejection is over: the next request probes it
    o.attempt("bad", t)
    assert o.state("bad").probing and o.ejected(t) == {"bad"}  # one probe at a time
    o.outcome("bad", True, t)
    assert o.state("bad").level == 2 and o.ejected(t + 19.9) == {"bad"} and not o.ejected(t + 20.0)
    t += 20.0
    o.attempt("bad", t)
    o.abandon("bad")  # the probe's client left: no verdict, the next request probes
    assert not o.state("bad").probing and o.ejected(t) == frozenset()
    o.attempt("bad", t)
    o.outcome("bad", False, t)
    state = o.state("bad")
    assert not o.ejected(t) and state.until is None and state.level == 2  # back, level kept for now
    feed(o, "bad", "." * 19, start=t + 1)
    assert o.state("bad").level == 0  # a full clean window forgives it


def test_old_outcomes_age_out_and_the_window_is_bounded() -> None:
    o = Outliers()
    feed(o, "n", "xx")
    feed(o, "n", "x", start=100.0)  # the first two are older than max_age: only one failure counts
    assert not o.ejected(100.0)
    feed(o, "n", "." * 50, start=101.0)
    assert len(o.state("n").outcomes) == CFG.window


def test_a_straggler_after_ejection_changes_nothing() -> None:
    s = eject(HEALTHY, 0.0, CFG)
    assert on_outcome(s, True, 1.0, (0, 0), CFG) is s


def test_view_for_the_dashboard() -> None:
    o = Outliers()
    t = feed(o, "bad", "x.x.x")
    view = o.view("bad", t)
    assert view["ejected"] and view["ejection_level"] == 1 and view["recent_failures"] == 0
    assert o.view("never-seen", t)["ejected"] is False


def _ndjson(*objs: object) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def _sse(*objs: object) -> bytes:
    return b"".join(
        b"data: " + (o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n\n" for o in objs
    )


def test_first_content_of_an_ollama_stream() -> None:
    empty = {"message": {"role": "assistant", "content": ""}, "done": False}
    word = {"message": {"role": "assistant", "content": "Hi"}, "done": False}
    assert commit.first_content(_ndjson(empty), False, eof=False) == commit.WAIT
    assert commit.first_content(_ndjson(empty, word), False, eof=False) == commit.GO
    assert commit.first_content(_ndjson(empty)[:-3], False, eof=False) == commit.WAIT  # incomplete line
    assert commit.first_content(_ndjson({"response": "x", "done": False}), False, eof=False) == commit.GO
    assert commit.first_content(_ndjson({"message": {"thinking": "hm"}}), False, eof=False) == commit.GO
    assert commit.first_content(_ndjson({"response": "", "done": True}), False, eof=False) == commit.GO
    assert commit.first_content(_ndjson(empty), False, eof=True).startswith("error: stream ended")
    assert (
        commit.first_content(_ndjson({"error": "out of memory"}), False, eof=False) == "error: out of memory"
    )
    assert commit.first_content(b"<html>\n", False, eof=False) == commit.GO  # the relay reports that


def test_first_content_of_an_openai_stream() -> None:
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}]}
    word = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    stop = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    assert commit.first_content(_sse(role), True, eof=False) == commit.WAIT
    assert commit.first_content(b": keep-alive\n\n" + _sse(role, word), True, eof=False) == commit.GO
    assert commit.first_content(_sse(role, stop), True, eof=False) == commit.GO
    assert commit.first_content(_sse(b"[DONE]"), True, eof=False) == commit.GO
    assert commit.first_content(_sse({"error": {"message": "boom"}}), True, eof=False) == "error: boom"
    assert commit.first_content(_sse(role), True, eof=True).startswith("error:")


def test_a_whole_reply_is_complete_only_with_its_final_line() -> None:
    done = {"message": {"content": "Hi"}, "done": True}
    partial = {"message": {"content": "Hi"}, "done": False}
    assert commit.complete(_ndjson(partial, done), False, expects_done=True) == commit.GO
    assert commit.complete(_ndjson(partial), False, expects_done=True).startswith("error: response ended")
    assert commit.complete(_ndjson(partial, {"error": "boom"}), False, expects_done=True) == "error: boom"
    assert commit.complete(b'{"embeddings": [[0.1]]}', False, expects_done=False) == commit.GO
    assert commit.complete(b'{"choices": []}', True, expects_done=True) == commit.GO
    assert commit.complete(b'{"id": "x"}', True, expects_done=True).startswith("error:")
    assert commit.complete(b'{"choi', True, expects_done=True).startswith("error:")


def test_the_outlier_defaults_match_the_doc() -> None:
    import re
    from dataclasses import fields
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "routing.md").read_text()
    section = doc[doc.index("## 9. Outlier ejection") :]
    for f in fields(OutlierConfig):
        match = re.search(rf"^\| {f.name} \| ([0-9.]+)", section, re.MULTILINE)
        assert match, f.name
        assert float(match.group(1)) == getattr(CFG, f.name), f.name


def test_the_elimination_reason() -> None:
    from test_scoring import M, node, snap_of

    from herd.routing.signals import ScoringConfig, eliminate

    n = snap_of(node("x")).nodes["x"]
    assert eliminate(n, M, ScoringConfig(), frozenset(), frozenset({"x"})) == "ejected (outlier)"
    assert eliminate(n, M, ScoringConfig(), frozenset({"x"}), frozenset({"x"})) == "circuit open"
    assert eliminate(n, M, ScoringConfig(), frozenset()) is None

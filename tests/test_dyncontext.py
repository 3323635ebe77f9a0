"""Dynamic context (--dynamic-context): the sizing rule, the per-model book, and a router that sizes num_ctx
from the prompts it has seen on a fake node, recorded on the request and in the trace store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import trio
from harness import start_fleet
from test_traces import wait_written

from herd.config import RoutingConfig
from herd.routing.dyncontext import ContextBook, size_context
from herd.routing.policies import Plan
from herd.routing.record import RequestRecord

MODEL = "llama3.2:3b"


def test_size_context_rule() -> None:
    assert size_context([5000] * 19) is None  # too few prompts seen
    assert size_context([5000] * 20) == 8192  # 5000 x 1.25 = 6250 -> 8192
    assert size_context([1000] * 100) is None  # fits the model's default: leave the request alone
    assert size_context([5000] * 100, requested=16384) is None  # never below the request's own value
    assert size_context([5000] * 100, requested=2048) == 8192
    assert size_context([3000] * 100, default=8192) is None  # never below the model's default
    # the p99, not the maximum or the mean: one huge outlier in 200 does not count
    assert size_context([100] * 197 + [7000] * 2 + [100_000]) == 16384
    assert size_context([500_000] * 50) == 131072  # capped
    assert size_context([6554] * 20) == 16384 and size_context([6553] * 20) == 8192  # powers of two


def rec(model: str, prompt: int | None, status: int = 200) -> RequestRecord:
    r = RequestRecord(0.0, 0.0, "ollama", "/api/chat", model, model, False, status=status)
    r.prompt_tokens = prompt
    return r


def plan(body: dict[str, object]) -> Plan:
    return Plan(MODEL, (MODEL,), False, {"model": MODEL, **body}, False, None)


def test_book_observes_successful_prompts_per_model_and_sizes_the_plan() -> None:
    book = ContextBook(window=50, max_models=2)
    for _ in range(30):
        book.observe(rec(MODEL, 7000))
        book.observe(rec(MODEL, 90_000, status=500))  # failed requests do not count
        book.observe(rec("other:latest", 100))
    book.observe(rec(MODEL, None))
    assert len(book.lengths[MODEL]) == 30
    p, sized = book.plan_for(plan({"options": {"temperature": 0.1}}))
    assert sized == 16384 and p.body["options"] == {"temperature": 0.1, "num_ctx": 16384}
    same, none = book.plan_for(plan({"options": {"num_ctx": 32768}}))
    assert none is None and same.body["options"] == {"num_ctx": 32768}
    book.observe(rec(MODEL, 7000))
    book.observe(rec("third:latest", 10))  # bounded: the least recently seen model ("other") goes
    assert set(book.lengths) == {MODEL, "third:latest"}
    assert book.plan_for(Plan("x:latest", ("x:latest",), False, {"model": "x"}, False, None))[1] is None


async def test_router_sizes_num_ctx_from_observed_prompts(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, routing=RoutingConfig(dynamic_context=True))
    fake = fleet.nodes["n1"]
    long_prompt = " ".join(["word"] * 4000)  # the fake node counts ~5,205 prompt tokens
    for _ in range(20):
        resp = await fleet.http.post(
            fleet.url + "/api/chat",
            json={"model": MODEL, "messages": [{"role": "user", "content": long_prompt}], "stream": False},
        )
        assert resp.status_code == 200
    sent = [body.get("options", {}).get("num_ctx") for path, body in fake.requests if path == "/api/chat"]
    assert sent == [None] * 20  # nothing is changed before enough prompts were seen
    resp = await fleet.http.post(
        fleet.url + "/api/chat",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "options": {"seed": 1}},
    )
    assert resp.status_code == 200
    path, body = fake.requests[-1]
    assert path == "/api/chat"
    assert body["options"] == {"seed": 1, "num_ctx": 8192}  # p99 5,205 x 1.25 -> 8,192
    await wait_written(fleet.router.traces, 21)
    rows = (
        sqlite3.connect(tmp_path / "traces.db").execute("SELECT num_ctx FROM traces ORDER BY id").fetchall()
    )
    assert rows[:20] == [(None,)] * 20 and rows[20] == (8192,)


async def test_off_by_default(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    assert fleet.router.contexts is None and fleet.router.services.proxy.contexts is None

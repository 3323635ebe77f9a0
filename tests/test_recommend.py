"""Recommendations: each kind from fixed facts (pure), then `GET /fleet/recommendations` on a live fleet with its
action applied through the management route it names."""

from __future__ import annotations

import json
from pathlib import Path

import trio
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

from herd.insight.bench import BenchResult
from herd.insight.recommend import Facts, ModelUse, NodeFacts, recommend

GIB = 2**30
A, B, C = "llama3.2:3b", "qwen3:8b", "phi4:14b"


def node(node_id: str, sizes: dict[str, int], loaded: set[str] = frozenset(), **kw: object) -> NodeFacts:
    defaults: dict = {"mem_total": 32 * GIB, "mem_available": 16 * GIB, "disk_free": 500 * GIB}
    defaults |= {"manages_models": True, "quants": dict.fromkeys(sizes, "Q4_K_M")}
    return NodeFacts(node_id=node_id, sizes=sizes, loaded=frozenset(loaded), **(defaults | kw))  # type: ignore[arg-type]


def kinds(items: list[dict]) -> list[tuple[str, str, str | None]]:
    return [(i["kind"], i["model"], i["node"]) for i in items]


def test_keep_loaded_on_the_fastest_node_that_fits() -> None:
    nodes = (
        node("a", {A: 2 * GIB}),
        node("b", {A: 2 * GIB}, {A}),
        node("c", {A: 2 * GIB}, mem_available=GIB),
    )
    bench = {
        ("a", A): BenchResult("a", A, 1, 0.1, 900.0, 80.0, None),
        ("b", A): BenchResult("b", A, 1, 0.1, 900.0, 40.0, None),
        ("c", A): BenchResult("c", A, 1, 0.1, 900.0, 200.0, None),  # fastest, but no room
    }
    items = recommend(Facts(7, {A: ModelUse(requests=700, by_node={"b": 700})}, nodes, bench))
    assert kinds(items) == [("keep_loaded", A, "a")]
    item = items[0]
    assert item["numbers"]["requests_per_day"] == 100.0 and item["numbers"]["gen_tps"] == 80.0
    assert item["action"] == {
        "method": "POST",
        "path": "/api/generate",
        "body": {"model": A, "keep_alive": -1},
    }
    quiet = recommend(Facts(7, {A: ModelUse(requests=70)}, nodes, bench))  # 10 a day: not worth pinning
    assert kinds(quiet) == []


def test_pull_a_model_asked_for_that_no_node_has() -> None:
    nodes = (node("a", {A: GIB}, mem_available=4 * GIB), node("b", {A: GIB}, mem_available=20 * GIB))
    items = recommend(Facts(1, {A: ModelUse(5), C: ModelUse(3, errors=3)}, nodes))
    assert kinds(items) == [("pull", C, "b")]
    assert items[0]["action"] == {"method": "POST", "path": "/api/pull", "body": {"model": C, "node": "b"}}


def test_short_capacity_from_queue_waits_suggests_another_node() -> None:
    nodes = (node("a", {B: 5 * GIB}, {B}), node("b", {A: GIB}), node("c", {A: GIB}, mem_available=2 * GIB))
    use = {B: ModelUse(requests=10, queue_wait_s=50.0, max_queue_wait_s=20.0), A: ModelUse(3)}
    items = recommend(Facts(7, use, nodes))
    assert kinds(items) == [("short_capacity", B, "b")]  # c has too little memory for it
    assert items[0]["numbers"]["mean_queue_wait_s"] == 5.0
    assert items[0]["action"]["body"] == {"model": B, "node": "b"}
    live = recommend(Facts(7, {B: ModelUse(10), A: ModelUse(3)}, nodes, waiting={B: 3}))
    assert kinds(live) == [("short_capacity", B, "b")] and live[0]["numbers"]["waiting_now"] == 3
    full = recommend(Facts(7, {B: use[B]}, (nodes[0],)))
    assert kinds(full) == [("short_capacity", B, None)] and full[0]["action"] is None


def test_unused_on_disk_and_unload_when_loaded() -> None:
    nodes = (node("a", {A: GIB, B: 5 * GIB, C: 9 * GIB}, {C}), node("o", {B: GIB}, manages_models=False))
    items = recommend(Facts(30, {A: ModelUse(40)}, nodes))
    assert kinds(items) == [("unload", C, "a"), ("unused", B, "a")]  # herd cannot delete on an OpenAI node
    unload, unused = items
    assert unload["action"] == {
        "method": "POST",
        "path": "/api/generate",
        "body": {"model": C, "keep_alive": 0},
    }
    assert unused["action"] == {"method": "DELETE", "path": "/api/delete", "body": {"model": B, "node": "a"}}
    assert unused["numbers"]["size_gib"] == 5.0 and "30 days" in unused["reason"]
    assert recommend(Facts(30, {}, nodes)) == []  # no traffic at all yet: no evidence of disuse


def test_quantisation_smaller_when_tight_bigger_when_roomy_and_busy() -> None:
    tight = node("a", {B: 14 * GIB}, {B}, mem_total=16 * GIB, quants={B: "Q8_0"})
    roomy = node("b", {A: 2 * GIB}, {A}, mem_total=64 * GIB, quants={A: "Q3_K_M"})
    items = recommend(Facts(1, {A: ModelUse(100), B: ModelUse(5)}, (tight, roomy)))
    quant = {i["node"]: i for i in items if i["kind"] == "quantisation"}
    assert set(quant) == {"a", "b"} and "Q4_K_M" in quant["a"]["reason"] and "Q8_0" in quant["b"]["reason"]
    assert quant["a"]["numbers"] == {"quantization": "Q8_0", "size_gib": 14.0, "mem_total_gib": 16.0}
    assert quant["a"]["action"] is None


async def test_recommendations_route_and_applying_one(nursery: trio.Nursery, tmp_path: Path) -> None:
    fake = FakeOllama([FakeModel(A), FakeModel(B)], loaded=[A, B])
    fleet = await start_fleet(nursery, tmp_path, {"n1": fake})
    for _ in range(3):
        body = {"model": A, "messages": [{"role": "user", "content": "hi"}], "stream": False}
        assert (await fleet.http.post(fleet.url + "/api/chat", json=body)).status_code == 200
    while fleet.router.traces.written < 3:  # noqa: ASYNC110 (the writer is another task)
        await trio.sleep(0.05)
    got = (await fleet.http.get(fleet.url + "/fleet/recommendations?days=1")).json()
    assert got["days"] == 1 and kinds(got["items"]) == [("unload", B, "n1")]
    action = got["items"][0]["action"]
    resp = await fleet.http.request(
        action["method"], fleet.url + action["path"], content=json.dumps(action["body"])
    )
    assert resp.status_code == 200 and B not in fake.loaded and A in fake.loaded
    assert (await fleet.http.get(fleet.url + "/fleet/recommendations?days=0")).status_code == 400

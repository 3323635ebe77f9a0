"""Model policies: pure planning, then through a real router."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import trio
from conftest import heartbeat_json
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

from herd.config import RoutingConfig
from herd.errors import BadRequest
from herd.fleet.heartbeat import parse_heartbeat
from herd.fleet.state import FleetSnapshot, apply_heartbeat
from herd.routing.policies import PolicyConfig, body_for, is_thinking, plan, thinking_headers, vram_substitute


def fleet_snap() -> FleetSnapshot:
    beat = heartbeat_json("a", "http://a:1", ["llama3.2:3b", "llama3.1:8b", "qwen3:8b"], ["llama3.1:8b"])
    beat["models"][2]["details"] = {"family": "qwen3"}
    for m in beat["loaded"]:
        m["details"] = {"family": "llama"}
        m["context_length"] = 8192
    return apply_heartbeat(FleetSnapshot(), parse_heartbeat(beat), 0.0)


def test_fallbacks_strict_and_vram_substitute() -> None:
    snap = fleet_snap()
    body = {"model": "llama3.2:3b", "fallback_models": ["qwen3:8b", "llama3.2:3b"], "messages": []}
    p = plan(body, strict_header=None, snap=snap, cfg=PolicyConfig())
    assert p.models == ("llama3.2:3b", "qwen3:8b")
    assert "fallback_models" not in p.body and p.body is not body
    p = plan(body, strict_header=None, snap=snap, cfg=PolicyConfig(vram_fallback=True))
    assert p.models == ("llama3.1:8b", "llama3.2:3b", "qwen3:8b")  # the hot same-family model comes first
    p = plan(body, strict_header="1", snap=snap, cfg=PolicyConfig(vram_fallback=True))
    assert p.models == ("llama3.2:3b",) and p.strict
    assert vram_substitute(snap, "llama3.1:8b") is None  # already hot: nothing to substitute
    assert vram_substitute(snap, "qwen3:8b") is None  # no hot model of its family
    untouched = {"model": "llama3.2:3b", "messages": []}
    assert plan(untouched, strict_header=None, snap=snap, cfg=PolicyConfig()).body is untouched
    with pytest.raises(BadRequest):
        plan({"model": "m", "fallback_models": "x"}, strict_header=None, snap=snap, cfg=PolicyConfig())


def test_thinking_models_get_a_bigger_budget() -> None:
    assert is_thinking("deepseek-r1:7b", {}) and is_thinking("gpt-oss:20b", {}) and is_thinking("qwq", {})
    assert is_thinking("qwen3:8b", {"think": True}) and not is_thinking("qwen3:8b", {})
    assert not is_thinking("llama3.2:3b", {"think": True})
    snap = fleet_snap()
    body = {"model": "deepseek-r1:7b", "options": {"num_predict": 100}}
    p = plan(body, strict_header=None, snap=snap, cfg=PolicyConfig())
    assert p.thinking and p.num_predict == 1024 and p.body["options"]["num_predict"] == 1024
    body = {"model": "deepseek-r1:7b", "options": {"num_predict": 500}}
    assert plan(body, strict_header=None, snap=snap, cfg=PolicyConfig()).num_predict == 2000
    p = plan(
        {"model": "m", "options": {"num_predict": 100}}, strict_header=None, snap=snap, cfg=PolicyConfig()
    )
    assert p.body["options"]["num_predict"] == 100 and not p.thinking
    p = replace(p, thinking=True, num_predict=1000)
    headers = thinking_headers(p, {"eval_count": 400, "done_reason": "stop"}, "t" * 300, "a" * 100)
    assert headers == {
        "X-Thinking-Tokens": "300",
        "X-Output-Tokens": "100",
        "X-Done-Reason": "stop",
        "X-Budget-Used": "0.40",
    }


def test_keep_alive_policy_only_fills_a_gap() -> None:
    snap = fleet_snap()
    cfg = PolicyConfig(keep_alive="30m")
    assert plan({"model": "m"}, strict_header=None, snap=snap, cfg=cfg).body["keep_alive"] == "30m"
    assert (
        plan({"model": "m", "keep_alive": 0}, strict_header=None, snap=snap, cfg=cfg).body["keep_alive"] == 0
    )


def test_context_protection_drops_a_smaller_num_ctx() -> None:
    snap = fleet_snap()
    node = snap.nodes["a"]
    p = plan(
        {"model": "llama3.1:8b", "options": {"num_ctx": 2048, "temperature": 0}},
        strict_header=None,
        snap=snap,
        cfg=PolicyConfig(),
    )
    body, protected = body_for(p, node, "llama3.1:8b")
    assert protected and body["options"] == {"temperature": 0}
    p = plan(
        {"model": "llama3.1:8b", "options": {"num_ctx": 16384}},
        strict_header=None,
        snap=snap,
        cfg=PolicyConfig(),
    )
    assert body_for(p, node, "llama3.1:8b") == (p.body, False)  # a bigger context is the client's choice
    body, _ = body_for(p, node, "qwen3:8b")
    assert body["model"] == "qwen3:8b"


MODEL = "llama3.2:3b"


async def test_fallback_models_through_the_router(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"n1": FakeOllama([FakeModel(MODEL), FakeModel("qwen3:8b")], loaded=[MODEL])}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    body = {"model": "ghost:1b", "fallback_models": ["qwen3:8b"], "messages": [], "stream": False}
    resp = await fleet.http.post(fleet.url + "/api/chat", json=body)
    assert resp.status_code == 200 and resp.headers["x-herd-model"] == "qwen3:8b"
    assert resp.headers["x-herd-fallback"] == "ghost:1b -> qwen3:8b"
    sent = nodes["n1"].requests[-1][1]
    assert sent["model"] == "qwen3:8b" and "fallback_models" not in sent
    resp = await fleet.http.post(fleet.url + "/api/chat", json=body, headers={"X-Herd-Strict": "1"})
    assert resp.status_code == 404
    oa = {"model": "ghost", "fallback_models": ["qwen3:8b"], "messages": [{"role": "user", "content": "x"}]}
    resp = await fleet.http.post(fleet.url + "/v1/chat/completions", json=oa)
    assert (
        resp.status_code == 200 and resp.json()["model"] == "qwen3:8b" and "x-herd-fallback" in resp.headers
    )


async def test_context_protection_and_vram_fallback_through_the_router(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    nodes = {"n1": FakeOllama([FakeModel(MODEL), FakeModel("llama3.1:8b")], loaded=[MODEL])}
    fleet = await start_fleet(nursery, tmp_path, nodes, routing=RoutingConfig(vram_fallback=True))
    body = {"model": MODEL, "messages": [], "stream": False, "options": {"num_ctx": 1024}}
    resp = await fleet.http.post(fleet.url + "/api/chat", json=body)
    assert resp.status_code == 200 and "num_ctx" not in nodes["n1"].requests[-1][1].get("options", {})
    resp = await fleet.http.post(
        fleet.url + "/api/chat", json={"model": "llama3.1:8b", "messages": [], "stream": False}
    )
    assert (
        resp.status_code == 200 and resp.headers["x-herd-model"] == MODEL
    )  # hot sibling instead of a cold load
    assert resp.headers["x-herd-fallback"] == f"llama3.1:8b -> {MODEL}"


async def test_thinking_model_headers_on_non_stream(nursery: trio.Nursery, tmp_path: Path) -> None:
    model = FakeModel("deepseek-r1:7b", capabilities=("completion", "thinking"))
    fleet = await start_fleet(nursery, tmp_path, {"n1": FakeOllama([model], loaded=["deepseek-r1:7b"])})
    body = {
        "model": "deepseek-r1:7b",
        "messages": [],
        "stream": False,
        "think": True,
        "options": {"num_predict": 64},
    }
    resp = await fleet.http.post(fleet.url + "/api/chat", json=body)
    assert resp.status_code == 200
    assert nodes_sent(fleet)["options"]["num_predict"] == 1024
    assert int(resp.headers["x-thinking-tokens"]) > 0 and int(resp.headers["x-output-tokens"]) > 0
    assert resp.headers["x-done-reason"] == "stop" and float(resp.headers["x-budget-used"]) > 0


def nodes_sent(fleet: object) -> dict:
    return fleet.nodes["n1"].requests[-1][1]  # type: ignore[attr-defined]

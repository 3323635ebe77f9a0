"""Model aliases through a real router: hard-coded client model names reach fleet models."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import trio
from fake_ollama import FakeModel, FakeOllama
from harness import openai_client, start_fleet

from herd.config import RoutingConfig
from herd.routing import aliases
from herd.routing.policies import PolicyConfig, plan

ALIASES = aliases.parse(["gpt-4o-mini=llama3.2:3b,qwen3:8b", "text-embedding-3-small=llama3.2:3b"])


def test_plan_resolves_aliases_and_strict_stops_at_the_first_target() -> None:
    from herd.fleet.state import FleetSnapshot

    cfg = PolicyConfig(aliases=ALIASES)
    p = plan(
        {"model": "gpt-4o-mini", "fallback_models": ["phi4"]},
        strict_header=None,
        snap=FleetSnapshot(),
        cfg=cfg,
    )
    assert p.requested == "llama3.2:3b" and p.body["model"] == "llama3.2:3b"
    assert p.models == ("llama3.2:3b", "qwen3:8b", "phi4:latest")
    strict = plan({"model": "gpt-4o-mini"}, strict_header="1", snap=FleetSnapshot(), cfg=cfg)
    assert strict.models == ("llama3.2:3b",)
    tagged = plan({"model": "gpt-4o-mini:latest"}, strict_header=None, snap=FleetSnapshot(), cfg=cfg)
    assert tagged.requested == "llama3.2:3b"  # an alias matches like any model name
    plain = plan({"model": "llama3.2:3b"}, strict_header=None, snap=FleetSnapshot(), cfg=cfg)
    assert plain.models == ("llama3.2:3b",)
    with pytest.raises(ValueError):
        aliases.from_json({"x": 3})


async def test_alias_serves_lists_and_falls_back(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"n1": FakeOllama([FakeModel("qwen3:8b")]), "n2": FakeOllama([FakeModel("llama3.2:3b")])}
    fleet = await start_fleet(nursery, tmp_path, nodes, routing=RoutingConfig(aliases=tuple(ALIASES.items())))
    with openai_client(fleet.url) as c:
        raw = await trio.to_thread.run_sync(
            lambda: c.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        )
        assert raw.headers["x-herd-model"] == "llama3.2:3b" and raw.headers["x-herd-node"] == "n2"
        assert raw.parse().choices[0].message.content == nodes["n2"].reply
        assert nodes["n2"].requests[-1][1]["model"] == "llama3.2:3b"
        emb = await trio.to_thread.run_sync(
            lambda: c.embeddings.create(model="text-embedding-3-small", input="hello")
        )
        assert len(emb.data[0].embedding) > 0
        listed = {m.id: m for m in (await trio.to_thread.run_sync(c.models.list)).data}
        assert listed["gpt-4o-mini"].alias_of == ["llama3.2:3b", "qwen3:8b"]  # type: ignore[attr-defined]
        one = await trio.to_thread.run_sync(lambda: c.models.retrieve("gpt-4o-mini"))
        assert one.alias_of == ["llama3.2:3b", "qwen3:8b"]  # type: ignore[attr-defined]
    tags = {m["name"]: m for m in (await fleet.http.get(fleet.url + "/api/tags")).json()["models"]}
    assert tags["gpt-4o-mini"]["alias_of"] == ["llama3.2:3b", "qwen3:8b"]
    assert tags["gpt-4o-mini"]["nodes"] == ["n2"] and "alias_of" not in tags["qwen3:8b"]

    # the first target goes away: the alias substitutes its fallback, unless the caller is strict
    await fleet.beat("n2", draining=True)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    resp = await fleet.http.post(fleet.url + "/api/chat", json=body)
    assert resp.status_code == 200 and resp.headers["x-herd-model"] == "qwen3:8b"
    assert resp.headers["x-herd-fallback"] == "llama3.2:3b -> qwen3:8b"
    strict = await fleet.http.post(fleet.url + "/api/chat", json=body, headers={"X-Herd-Strict": "1"})
    assert strict.status_code == 503


async def test_aliases_are_a_runtime_setting(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    body = {"model": "claude-3-5-haiku", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    assert (await fleet.http.post(fleet.url + "/api/chat", json=body)).status_code == 404
    resp = await fleet.http.post(
        fleet.url + "/fleet/settings", json={"aliases": {"claude-3-5-haiku": ["llama3.2:3b"]}}
    )
    assert resp.status_code == 200
    assert resp.json()["toggles"]["aliases"] == {"claude-3-5-haiku": ["llama3.2:3b"]}
    resp = await fleet.http.post(fleet.url + "/api/chat", json=body)
    assert resp.status_code == 200 and resp.headers["x-herd-model"] == "llama3.2:3b"
    bad = await fleet.http.post(fleet.url + "/fleet/settings", json={"aliases": {"x": 1}})
    assert bad.status_code == 400
    with openai_client(fleet.url) as c, pytest.raises(openai.NotFoundError):
        await trio.to_thread.run_sync(lambda: c.models.retrieve("nope"))


async def test_show_of_an_alias_shows_its_model(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, routing=RoutingConfig(aliases=tuple(ALIASES.items())))
    resp = await fleet.http.post(fleet.url + "/api/show", json={"model": "gpt-4o-mini"})
    assert resp.status_code == 200 and resp.headers["x-herd-model"] == "llama3.2:3b"
    assert fleet.nodes["n1"].requests[-1] == ("/api/show", {"model": "llama3.2:3b", "name": "llama3.2:3b"})

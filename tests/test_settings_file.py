"""Runtime settings survive a restart: toggles and paused nodes in `<data-dir>/settings.json`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio
from conftest import heartbeat_json
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

from herd.config import RouterConfig
from herd.nursery.router import Router
from herd.runtime import RuntimeSettings
from herd.store.settings_file import parse, read, state_of, write_atomic

MODEL = "llama3.2:3b"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}


def test_parse_keeps_known_toggles_and_string_node_ids() -> None:
    text = json.dumps(
        {
            "version": 9,
            "toggles": {"vram_fallback": True, "auto_pull": "yes", "nope": True},
            "paused": ["a", 3],
        }
    )
    assert parse(text) == ({"vram_fallback": True}, ["a"])
    assert parse('{"toggles": [], "paused": {}}') == ({}, [])
    with pytest.raises(ValueError):
        parse("[1]")


def test_state_round_trips_through_an_atomic_write(tmp_path: Path) -> None:
    state = state_of(RuntimeSettings(vram_fallback=True), {"b", "a"})
    assert state["paused"] == ["a", "b"]
    write_atomic(tmp_path / "settings.json", state)
    assert read(tmp_path / "settings.json") == (
        {"vram_fallback": True, "auto_pull": False, "aliases": {}},
        ["a", "b"],
    )
    assert not (tmp_path / "settings.json.tmp").exists()
    (tmp_path / "bad.json").write_text("{not json")
    assert read(tmp_path / "bad.json") == ({}, []) and read(tmp_path / "missing.json") == ({}, [])


async def test_toggles_and_paused_nodes_survive_a_restart(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    nodes = {n: FakeOllama([FakeModel(MODEL)], loaded=[MODEL]) for n in ("a", "b")}
    async with trio.open_nursery() as first:
        fleet = await start_fleet(first, tmp_path, nodes)
        assert (
            await fleet.http.post(
                fleet.url + "/fleet/settings", json={"auto_pull": True, "aliases": {"gpt-4o-mini": [MODEL]}}
            )
        ).status_code == 200
        assert (await fleet.http.post(fleet.url + "/fleet/nodes/a/pause")).status_code == 200
        keeper = fleet.router.settings_keeper
        while not (keeper.saved or {}).get("paused"):  # noqa: ASYNC110 (the keeper writes off the request path)
            await trio.sleep(0.5)
        saved = json.loads((tmp_path / "settings.json").read_text())
        assert saved["toggles"]["auto_pull"] is True and saved["paused"] == ["a"]
        first.cancel_scope.cancel()

    for fake in nodes.values():
        await nursery.start(fake.run)
    cfg = RouterConfig(data_dir=tmp_path, host="127.0.0.1", port=0, local_node=False, mdns=False)
    router = Router(cfg)
    urls = await nursery.start(router.run)
    assert router.services.settings.auto_pull is True and router.registry.paused == {"a"}
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        settings = (await http.get(urls[0] + "/fleet/settings")).json()["toggles"]
        assert settings == {"vram_fallback": False, "auto_pull": True, "aliases": {"gpt-4o-mini": [MODEL]}}
        for node_id, fake in nodes.items():
            body = heartbeat_json(node_id, fake.url, [MODEL], [MODEL])
            assert (await http.post(urls[0] + "/heartbeat", json=body)).status_code == 200
        for _ in range(4):  # the paused node gets nothing
            resp = await http.post(urls[0] + "/api/chat", json=CHAT)
            assert resp.status_code == 200 and resp.headers["x-herd-node"] == "b"
        status = (await http.get(urls[0] + "/fleet/status")).json()
        assert {n["node_id"]: n["paused"] for n in status["nodes"]} == {"a": True, "b": False}
        assert (await http.post(urls[0] + "/fleet/nodes/a/resume")).status_code == 200
    router.stop()
    while router.settings_keeper.saved["paused"]:  # noqa: ASYNC110 (shutdown writes the last change)
        await trio.sleep(0.5)
    assert json.loads((tmp_path / "settings.json").read_text())["paused"] == []

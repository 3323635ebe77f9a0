"""The fleet frame's additive fields for the dashboard: request kinds per model and per request path, running
requests per model, queues; request frames with their kind."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import trio
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet
from trio_websocket import open_websocket_url

from herd.observe.fleet_view import model_kinds, request_kind

MODEL, EMBED = "llama3.2:3b", "nomic-embed-text:latest"


def test_model_kinds_from_capabilities() -> None:
    assert model_kinds("llama3.2:3b", frozenset({"completion", "embedding", "tools"})) == ["text"]
    assert model_kinds("llava:7b", frozenset({"completion", "vision", "embedding"})) == ["text", "vision"]
    assert model_kinds("nomic-embed-text", frozenset({"embedding"})) == ["embed"]
    assert model_kinds("nomic-embed-text", None) == ["embed"]  # no capabilities reported: from the name
    assert model_kinds("smollm2", None) == ["text"] and model_kinds("odd", frozenset({"tools"})) == ["text"]


def test_request_kind_from_path() -> None:
    assert [
        request_kind(p)
        for p in (
            "/api/chat",
            "/v1/chat/completions",
            "/api/embed",
            "/v1/embeddings",
            "/v1/images/generations",
            "/v1/audio/transcriptions",
            "/v1/messages",
        )
    ] == ["text", "text", "embed", "embed", "image", "speech", "text"]


async def test_frames_carry_kinds_running_models_and_queues(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {
        "n1": FakeOllama([FakeModel(MODEL), FakeModel(EMBED)], loaded=[MODEL], chunk_delay=0.2, num_chunks=3)
    }
    fleet = await start_fleet(nursery, tmp_path, nodes)
    ws_url = fleet.url.replace("http://", "ws://") + "/dashboard/ws"
    async with open_websocket_url(ws_url) as ws:
        first = json.loads(await ws.get_message())
        node = first["data"]["nodes"][0]
        assert node["kinds"] == {EMBED: ["embed"], MODEL: ["text"]} and node["in_flight_models"] == {}
        assert first["data"]["queues"] == []
        body = {"model": MODEL, "messages": [], "stream": False}
        async with trio.open_nursery() as inner:
            inner.start_soon(partial(fleet.http.post, fleet.url + "/api/chat", json=body))
            with trio.fail_after(10):  # hang guard
                while fleet.router.services.slots.total() == 0:  # noqa: ASYNC110 (the request is another task)
                    await trio.sleep(0.01)
            status = (await fleet.http.get(fleet.url + "/fleet/status")).json()
            assert status["nodes"][0]["in_flight_models"] == {MODEL: 1}
        with trio.fail_after(10):  # hang guard
            while (frame := json.loads(await ws.get_message()))["type"] != "request":
                pass
        assert frame["data"]["kind"] == "text" and frame["data"]["model"] == MODEL

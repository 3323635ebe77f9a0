"""Requests with images go only to models that advertise vision; otherwise a clear 400."""

from __future__ import annotations

import base64
from pathlib import Path

import trio
from conftest import heartbeat_json
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

PNG = base64.b64encode(b"\x89PNG fake").decode()


async def test_images_need_a_vision_model(nursery: trio.Nursery, tmp_path: Path) -> None:
    text = FakeModel("llama3.2:3b")
    seeing = FakeModel("llava:7b", capabilities=("completion", "vision"))
    fake = FakeOllama([text, seeing], loaded=["llama3.2:3b", "llava:7b"])
    fleet = await start_fleet(nursery, tmp_path, {"n1": fake})
    entries = [
        {
            "name": m.name,
            "model": m.name,
            "size": m.size,
            "digest": "d" * 64,
            "capabilities": list(m.capabilities),
            "details": {"family": m.family},
        }
        for m in (text, seeing)
    ]
    beat = heartbeat_json("n1", fake.url, [], list(fake.loaded))
    beat["models"] = entries
    assert (await fleet.http.post(fleet.url + "/heartbeat", json=beat)).status_code == 200
    msg = {"role": "user", "content": "what is this?", "images": [PNG]}
    resp = await fleet.http.post(fleet.url + "/api/chat", json={"model": "llama3.2:3b", "messages": [msg]})
    assert resp.status_code == 400 and "vision" in resp.json()["error"]
    assert not any(p == "/api/chat" for p, _ in fake.requests)
    resp = await fleet.http.post(
        fleet.url + "/api/chat", json={"model": "llava:7b", "messages": [msg], "stream": False}
    )
    assert resp.status_code == 200 and fake.requests[-1][1]["messages"][0]["images"] == [PNG]
    plain = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    assert (await fleet.http.post(fleet.url + "/api/chat", json=plain)).status_code == 200
    parts = [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    oa = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": parts}]}
    resp = await fleet.http.post(fleet.url + "/v1/chat/completions", json=oa)
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "model"
    resp = await fleet.http.post(fleet.url + "/v1/chat/completions", json={**oa, "model": "llava:7b"})
    assert resp.status_code == 200

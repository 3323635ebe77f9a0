"""The dashboard: page and assets, WebSocket frames that follow heartbeats, slow subscribers drop, settings."""

from __future__ import annotations

import json
from pathlib import Path

import trio
from harness import start_fleet
from trio_websocket import open_websocket_url

from herd.config import FleetConfig
from herd.fleet.registry import Registry
from herd.observe.broadcaster import Broadcaster

MODEL = "llama3.2:3b"


async def test_page_and_assets(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    page = await fleet.http.get(fleet.url + "/dashboard")
    assert page.status_code == 200 and '<nav id="tabs">' in page.text
    for tab in ("Fleet", "Trends", "Models", "Apps", "Health", "Settings", "Traces"):
        assert f">{tab}</button>" in page.text
    assert "http" not in page.text.split("<body>")[1].replace("http-equiv", "")  # no CDN
    js = await fleet.http.get(fleet.url + "/dashboard/static/dashboard.js")
    assert js.status_code == 200 and "WebSocket" in js.text


async def test_socket_pushes_fleet_and_request_frames(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    ws_url = fleet.url.replace("http://", "ws://") + "/dashboard/ws"
    async with open_websocket_url(ws_url) as ws:
        first = json.loads(await ws.get_message())
        assert first["type"] == "fleet" and first["data"]["nodes"][0]["node_id"] == "n1"
        await fleet.beat("n1", draining=True)
        with trio.fail_after(10):  # hang guard only
            while True:
                frame = json.loads(await ws.get_message())
                if frame["type"] == "fleet" and frame["data"]["nodes"][0]["draining"]:
                    break
        await fleet.beat("n1")
        await fleet.http.post(fleet.url + "/api/chat", json={"model": MODEL, "messages": [], "stream": False})
        with trio.fail_after(10):
            while (frame := json.loads(await ws.get_message()))["type"] != "request":
                pass
        assert frame["data"]["node"] == "n1" and frame["data"]["status"] == 200


async def test_a_slow_subscriber_drops_frames_instead_of_blocking() -> None:
    registry = Registry(FleetConfig())
    b = Broadcaster(registry, lambda: {}, depth=2)
    send, receive = b.subscribe()
    for i in range(10):
        b.publish({"n": i})  # never blocks, whoever is listening
    assert b.dropped == 8
    assert [json.loads(receive.receive_nowait())["n"] for _ in range(2)] == [0, 1]
    b.unsubscribe(send)
    b.publish({"n": 99})
    assert b.dropped == 8


async def test_settings_toggle_and_read_only_config(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    got = (await fleet.http.get(fleet.url + "/fleet/settings")).json()
    assert (
        got["toggles"] == {"vram_fallback": False, "auto_pull": False, "aliases": {}}
        and got["config"]["port"] == 0
    )
    resp = await fleet.http.post(fleet.url + "/fleet/settings", json={"vram_fallback": True})
    assert (
        resp.json()["toggles"]["vram_fallback"] is True and fleet.router.services.policy_now().vram_fallback
    )
    for bad in ({"vram_fallback": "yes"}, {"nope": True}, {}):
        assert (await fleet.http.post(fleet.url + "/fleet/settings", json=bad)).status_code == 400

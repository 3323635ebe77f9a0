"""Uploads: the agent's media server and the router agree on the largest body, and an oversized upload is a
413 at once (from the headers when it exceeds every node), never a long hang."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from conftest import heartbeat_json
from fake_media import FakeMediaServer
from harness import start_fleet
from test_media import post_media, start_commands

from herd.errors import BadRequest
from herd.fleet.heartbeat import parse_heartbeat
from herd.node.collect import BackendProbe
from herd.node.commands import UPLOAD_LIMIT
from herd.node.media import MediaScout

MIB = 2**20


def test_media_max_bytes_is_optional_and_checked() -> None:
    entry: dict[str, Any] = {"kind": "transcription", "model": "w", "url": "http://h:2", "api": "openai"}
    assert "max_bytes" not in parse_heartbeat(heartbeat_json("n", "http://h:1", [], media=[entry])).media[0]
    hb = parse_heartbeat(heartbeat_json("n", "http://h:1", [], media=[{**entry, "max_bytes": 5}]))
    assert hb.media[0]["max_bytes"] == 5
    for bad in (0, -1, "5", 1.5, True, 2**41):
        with pytest.raises(BadRequest):
            parse_heartbeat(heartbeat_json("n", "http://h:1", [], media=[{**entry, "max_bytes": bad}]))


async def test_the_agent_refuses_an_oversized_upload_from_its_headers(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    _, commands = await start_commands(
        nursery, stt_command=f"{sys.executable} -c 'open({str(marker)!r}, \"w\")'"
    )
    assert commands.url is not None
    async with httpx.AsyncClient(trust_env=False) as client:
        resp = await client.post(
            commands.url + "/v1/audio/transcriptions", files={"file": ("a.wav", b"x" * (UPLOAD_LIMIT + 1))}
        )
    assert resp.status_code == 413 and "exceeds" in resp.json()["error"]["message"]  # JSON, not Quart's HTML
    assert not marker.exists()


async def test_the_agent_reports_its_limit(nursery: trio.Nursery) -> None:
    cfg, commands = await start_commands(nursery, stt_command="true {input}")
    async with httpx.AsyncClient(trust_env=False) as client:
        scout = MediaScout(cfg, client, advertise=lambda u: u, service_url=lambda: commands.url)
        media = await scout.scan(BackendProbe(up=False), "http://127.0.0.1:9")
    assert media[0]["max_bytes"] == UPLOAD_LIMIT


async def test_the_router_checks_the_nodes_limit_before_sending(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    server = FakeMediaServer(models=("whisper-1",))
    await nursery.start(server.run)
    fleet = await start_fleet(nursery, tmp_path, {})
    entry = {
        "kind": "transcription",
        "model": "whisper-1",
        "api": "openai",
        "url": server.url,
        "max_bytes": MIB,
    }
    await post_media(fleet, "box", [entry])
    url = fleet.url + "/v1/audio/transcriptions"
    # over every node's limit by its Content-Length: refused from the headers, before the upload is read
    big = await fleet.http.post(url, files={"file": ("a.wav", b"x" * (2 * MIB))})
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    # under it by Content-Length, but the request herd would send is over it: still never sent
    edge = await fleet.http.post(url, files={"file": ("a.wav", b"x" * (MIB - 100))})
    assert edge.status_code == 413
    own = await fleet.http.post(fleet.url + "/api/transcribe", files={"file": ("a.wav", b"x" * (2 * MIB))})
    assert own.status_code == 413 and "larger than" in own.json()["error"]
    assert not server.requests
    fits = await fleet.http.post(url, files={"file": ("a.wav", b"x" * (MIB // 2))})
    assert fits.status_code == 200 and len(server.requests) == 1


async def test_an_upload_goes_to_a_node_that_takes_it(nursery: trio.Nursery, tmp_path: Path) -> None:
    small, large = FakeMediaServer(models=("whisper-1",)), FakeMediaServer(models=("whisper-1",))
    await nursery.start(small.run)
    await nursery.start(large.run)
    fleet = await start_fleet(nursery, tmp_path, {})
    entry = {"kind": "transcription", "model": "whisper-1", "api": "openai"}
    await post_media(fleet, "a-small", [{**entry, "url": small.url, "max_bytes": MIB}])
    await post_media(fleet, "b-large", [{**entry, "url": large.url, "max_bytes": 8 * MIB}])
    resp = await fleet.http.post(
        fleet.url + "/v1/audio/transcriptions",
        files={"file": ("a.wav", b"x" * (2 * MIB))},
        data={"model": "whisper-1"},
    )
    assert resp.status_code == 200 and resp.headers["x-herd-node"] == "b-large"
    assert not small.requests and large.requests

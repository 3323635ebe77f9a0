"""The web edge's guard through a real router on 127.0.0.1:0: preflights and CORS headers, disallowed origins
(inference and fleet changes), the loopback Host check, 413 before an oversize body is read (Content-Length and
chunked), and the admin key on fleet routes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import trio
from conftest import heartbeat_json
from harness import start_fleet
from trio_websocket import open_websocket_url

from herd.config import SecurityConfig
from herd.guard.keys import Secret
from herd.pullcmd import pull

MODEL = "llama3.2:3b"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}


async def test_preflight_and_cors_headers_for_an_allowed_page(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    origin = "http://localhost:5173"
    pre = await fleet.http.options(
        fleet.url + "/v1/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-herd-tags, x-stainless-os",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == origin
    allowed = {h.strip().lower() for h in pre.headers["access-control-allow-headers"].split(",")}
    assert {
        "authorization",
        "content-type",
        "x-api-key",
        "anthropic-version",
        "x-herd-tags",
        "x-stainless-os",
    } <= allowed
    assert "POST" in pre.headers["access-control-allow-methods"]
    resp = await fleet.http.post(fleet.url + "/api/chat", json=CHAT, headers={"Origin": origin})
    assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == origin
    assert "X-Herd-Node" in resp.headers["access-control-expose-headers"]
    plain = await fleet.http.post(fleet.url + "/api/chat", json=CHAT)
    assert "access-control-allow-origin" not in plain.headers  # not a browser: nothing to add


async def test_disallowed_origin_gets_403_for_inference_and_fleet_changes(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    chat = await fleet.http.post(fleet.url + "/api/chat", content=json.dumps(CHAT), headers=evil)
    assert chat.status_code == 403 and "evil.example" in chat.json()["error"]
    openai = await fleet.http.post(fleet.url + "/v1/chat/completions", content=json.dumps(CHAT), headers=evil)
    assert openai.status_code == 403 and openai.json()["error"]["code"] == "forbidden"
    pause = await fleet.http.post(fleet.url + "/fleet/nodes/n1/pause", headers=evil)
    assert pause.status_code == 403
    # even an allowed origin (a localhost page) may not change the fleet, nor a no-cors cross-site request
    local = await fleet.http.post(
        fleet.url + "/fleet/nodes/n1/pause", headers={"Origin": "http://localhost:3000"}
    )
    assert local.status_code == 403
    beat = json.dumps(heartbeat_json("intruder", "http://203.0.113.9:11434", [MODEL]))
    page_beat = await fleet.http.post(
        fleet.url + "/heartbeat", content=beat, headers={"Origin": "http://localhost:3000"}
    )
    assert page_beat.status_code == 403
    no_cors = await fleet.http.post(
        fleet.url + "/fleet/nodes/n1/pause", headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert no_cors.status_code == 403
    assert fleet.nodes["n1"].requests == []  # nothing reached the node
    status = (await fleet.http.get(fleet.url + "/fleet/status")).json()
    assert [(n["node_id"], n["paused"]) for n in status["nodes"]] == [("n1", False)]
    own = await fleet.http.post(
        fleet.url + "/fleet/nodes/n1/pause", headers={"Origin": fleet.url}
    )  # the dashboard's own origin
    assert own.status_code == 200


async def test_loopback_router_refuses_foreign_host_names(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)  # bound to 127.0.0.1
    rebound = await fleet.http.get(fleet.url + "/api/tags", headers={"Host": "attacker.example:11435"})
    assert rebound.status_code == 403
    local = await fleet.http.get(fleet.url + "/api/tags", headers={"Host": "localhost:11435"})
    assert local.status_code == 200


async def _raw_exchange(url: str, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send a request head and some body bytes (never the end of the body), then read the reply."""
    host, port = url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(head)
        for part in body_parts:
            await stream.send_all(part)
        reply = b""
        with trio.fail_after(10):  # hang guard: the answer comes at once
            while chunk := await stream.receive_some(65536):  # the server closes: the body never ended
                reply += chunk
    return reply


async def test_oversize_bodies_get_413_before_they_are_read(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, max_body_bytes=64 * 1024)
    # Content-Length over the limit: answered without sending a byte of the body
    head = b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    reply = await _raw_exchange(fleet.url, head + b"Content-Length: 1000000000\r\n\r\n", [])
    assert reply.startswith(b"HTTP/1.1 413") and b"max-body" in reply
    # chunked: answered once the count passes the limit, while the body has not ended
    chunk = b"x" * 40_000
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    reply = await _raw_exchange(
        fleet.url,
        head.replace(b"/api/chat", b"/v1/chat/completions") + b"Transfer-Encoding: chunked\r\n\r\n",
        [frame, frame],
    )
    assert reply.startswith(b"HTTP/1.1 413")
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "payload_too_large"
    ok = await fleet.http.post(fleet.url + "/api/chat", json=CHAT)  # the router still serves
    assert ok.status_code == 200


async def test_admin_key_guards_fleet_changes_and_reads(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, security=SecurityConfig(admin_key=Secret("adm-123")))
    pause = fleet.url + "/fleet/nodes/n1/pause"
    assert (await fleet.http.post(pause)).status_code == 401
    assert (await fleet.http.post(pause, headers={"X-Herd-Admin-Key": "wrong"})).status_code == 401
    assert (await fleet.http.get(fleet.url + "/fleet/status")).status_code == 401
    assert (await fleet.http.post(fleet.url + "/api/pull", json={"model": MODEL})).status_code == 401
    assert (await fleet.http.post(fleet.url + "/fleet/settings", json={"auto_pull": True})).status_code == 401
    assert (await fleet.http.post(pause, headers={"X-Herd-Admin-Key": "adm-123"})).status_code == 200
    status = await fleet.http.get(fleet.url + "/fleet/status", headers={"Authorization": "Bearer adm-123"})
    assert [n["paused"] for n in status.json()["nodes"]] == [True]
    settings = await fleet.http.get(fleet.url + "/fleet/settings", headers={"X-Herd-Admin-Key": "adm-123"})
    assert "adm-123" not in settings.text and "<redacted>" in settings.text
    assert (await fleet.http.post(fleet.url + "/heartbeat", content=b"{}")).status_code == 400  # not admin


async def test_herd_pull_sends_the_admin_key(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, security=SecurityConfig(admin_key=Secret("adm-123")))
    out = io.StringIO()
    assert await trio.to_thread.run_sync(lambda: pull(fleet.url, "gemma3:4b", None, out)) == 1
    assert "admin key" in out.getvalue()
    out = io.StringIO()
    assert (
        await trio.to_thread.run_sync(lambda: pull(fleet.url, "gemma3:4b", None, out, admin_key="adm-123"))
        == 0
    )
    assert "success" in out.getvalue()


async def test_websocket_from_a_disallowed_origin_is_refused(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    refused = await fleet.http.get(
        fleet.url + "/dashboard/ws", headers={**upgrade, "Origin": "http://evil.example"}
    )
    assert refused.status_code == 403  # refused before the handshake completes
    ws_url = fleet.url.replace("http://", "ws://") + "/dashboard/ws"
    async with open_websocket_url(ws_url, extra_headers=[("Origin", fleet.url)]) as ws:  # the dashboard's own
        assert json.loads(await ws.get_message())["type"] == "fleet"

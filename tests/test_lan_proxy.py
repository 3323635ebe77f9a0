"""The agent's LAN proxy for a loopback-only backend: the allow-list and the on/off/auto decision as pure
functions; the flags (no token: exit 2 with the reason); and through real servers on 127.0.0.1:0 — a fake
Ollama, a real agent with `--lan-proxy` and the fleet token, a router with the same token — chats (stream and
not), a model listing and a pull go through the proxy signed, while unsigned, wrongly signed or replayed
requests to the proxy get 401 with the reason, a router without the token is told why, and a client leaving
mid-stream cancels the backend's stream."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from fake_ollama import FakeModel, FakeOllama
from harness import Fleet, start_fleet

from herd.cli import build_parser, main
from herd.cli_node import node_config
from herd.config import NodeConfig, Secret, TrustConfig
from herd.fleet.heartbeat import parse_heartbeat
from herd.fleet.signing import fleet_id, sign
from herd.fleet.state import FleetSnapshot, apply_heartbeat
from herd.node.lanpolicy import LanProxyRefused, decide, parse_mode, refusal
from herd.node.lanproxy import LanProxy
from herd.nursery.node import agent_client, build_agent, lan_proxy_for
from herd.routing.nodeauth import SigningUpstream, origin

TOKEN = "fleet-token-for-the-lan-proxy-0123456789"
MODEL = "llama3.2:3b"
USER = [{"role": "user", "content": "hi"}]


def trust(token: str = TOKEN) -> TrustConfig:
    return TrustConfig(fleet_token=Secret(token), fleet_id=fleet_id(token))


# --- pure decisions ---------------------------------------------------------------------------------------


def test_only_the_backend_api_is_relayed() -> None:
    for method, path in [
        ("POST", "/api/chat"),
        ("GET", "/api/tags"),
        ("DELETE", "/api/delete"),
        ("HEAD", "/api/version"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/health"),
        ("GET", "/props"),
        ("GET", "/slots"),
    ]:
        assert refusal(method, path) is None, (method, path)
    assert refusal("GET", "/")[0] == 404  # type: ignore[index]
    assert refusal("GET", "/metrics")[0] == 404  # type: ignore[index]
    assert refusal("GET", "/apix/tags")[0] == 404  # type: ignore[index]
    assert refusal("GET", "/healthz")[0] == 404  # type: ignore[index]
    for sneaky in ("/api/../admin", "/api/%2e%2e/admin", "/v1/./models", "/api/..%5cadmin", "api/tags"):
        assert refusal("GET", sneaky)[0] == 400, sneaky  # type: ignore[index]
    status, message = refusal("PUT", "/api/chat")  # type: ignore[misc]
    assert status == 405 and "PUT" in message


def test_when_the_proxy_runs() -> None:
    loop, lan = "http://127.0.0.1:11434", "http://10.0.0.5:11434"
    assert decide("on", lan, None, True).enabled
    assert decide("on", loop, "http://10.0.0.5:9999", True).enabled
    assert not decide("off", loop, None, True).enabled
    assert decide("auto", loop, None, True).enabled
    assert decide("auto", "http://localhost:11434", None, True).enabled
    assert decide("auto", "http://[::1]:11434", None, True).enabled
    assert not decide("auto", lan, None, True).enabled
    assert not decide("auto", "http://0.0.0.0:11434", None, True).enabled  # listens everywhere already
    assert not decide("auto", loop, "http://10.0.0.5:11434", True).enabled
    quiet = decide("auto", loop, None, False)
    assert not quiet.enabled and quiet.warn and "no fleet token" in quiet.why
    with pytest.raises(LanProxyRefused, match="needs the fleet token"):
        decide("on", loop, None, False)
    assert [parse_mode(w) for w in ("on", "TRUE", "1", "off", "no", "", None, "auto")] == [
        "on",
        "on",
        "on",
        "off",
        "off",
        "off",
        "off",
        "auto",
    ]
    with pytest.raises(LanProxyRefused, match="on, off or auto"):
        parse_mode("sometimes")


def test_flags_environment_and_refusal_without_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def cfg(argv: list[str], env: dict[str, str]) -> NodeConfig:
        return node_config(build_parser(env).parse_args(["node", "--data-dir", str(tmp_path), *argv]), env)

    plain = cfg([], {})
    assert not plain.lan_proxy and plain.lan_proxy_port == 11437
    on = cfg(["--lan-proxy", "--lan-proxy-port", "12000", "--fleet-token", TOKEN], {})
    assert on.lan_proxy and on.lan_proxy_port == 12000
    env = {"FLEET_LAN_PROXY": "auto", "FLEET_LAN_PROXY_PORT": "12001", "FLEET_TOKEN": TOKEN}
    auto = cfg([], env)
    assert auto.lan_proxy and auto.lan_proxy_port == 12001  # the default backend URL is localhost
    assert not cfg(["--backend-url", "http://10.1.2.3:11434"], env).lan_proxy
    assert not cfg(["--lan-proxy", "auto"], {}).lan_proxy  # auto without a token stays off
    assert main(["node", "--lan-proxy", "--data-dir", str(tmp_path)], {}) == 2
    assert main(["node", "--lan-proxy", "maybe", "--data-dir", str(tmp_path)], {}) == 2
    err = capsys.readouterr().err
    assert "herd node: --lan-proxy needs the fleet token" in err and "only requests signed" in err
    assert "on, off or auto" in err


def test_signed_flag_and_the_origins_the_router_signs_for() -> None:
    def beat(node_id: str, url: str, signed: bool) -> dict[str, object]:
        return {"node_id": node_id, "backend_url": url, **({"signed": True} if signed else {})}

    snap = FleetSnapshot()
    for node_id, url, signed in [("a", "http://10.0.0.5:11437", True), ("b", "http://10.0.0.6:11434", False)]:
        hb = parse_heartbeat(beat(node_id, url, signed))
        assert hb.signed is signed and parse_heartbeat(hb.to_json()).signed is signed
        snap = apply_heartbeat(snap, hb, 0.0)
    up = SigningUpstream(None, TOKEN, lambda: snap)  # type: ignore[arg-type]
    assert up.needs_signature("http://10.0.0.5:11437/api/chat")
    assert not up.needs_signature("http://10.0.0.6:11434/api/chat")
    assert not up.needs_signature("http://10.0.0.5:11434/api/chat")  # same host, not the proxy's port
    assert origin("HTTP://Box:80/x") == origin("http://box/y") == "http://box:80"
    with pytest.raises(Exception, match="wrong type"):
        parse_heartbeat({**beat("c", "http://10.0.0.7:1", False), "signed": "yes"})


# --- through real servers ---------------------------------------------------------------------------------


@asynccontextmanager
async def proxied_node(fleet: Fleet, fake: FakeOllama, tmp_path: Path) -> AsyncIterator[LanProxy]:
    """A real agent with --lan-proxy and the fleet token, built as `herd node` builds it, until it joined."""
    cfg = NodeConfig(
        node_id="proxied",
        data_dir=tmp_path / "node",
        ollama_url=fake.url,
        router_url=fleet.url,
        heartbeat_interval=0.1,
        backoff_max=0.1,
        trust=trust(),
        lan_proxy=True,
        lan_proxy_host="127.0.0.1",
        lan_proxy_port=0,
    )
    proxy = lan_proxy_for(cfg)
    assert proxy is not None
    async with agent_client(cfg) as client, trio.open_nursery() as inner:
        agent = build_agent(cfg, client, None, proxy)
        await inner.start(proxy.run)
        await inner.start(agent.run)
        with trio.fail_after(20):  # hang guard only
            while agent.sent < 1:  # noqa: ASYNC110 (another task's progress)
                await trio.sleep(0.02)
        yield proxy
        inner.cancel_scope.cancel()


async def test_chats_go_through_the_proxy_signed_and_nothing_else_passes(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake = FakeOllama([FakeModel(MODEL)], loaded=[MODEL], num_chunks=5)
    await nursery.start(fake.run)
    fleet = await start_fleet(nursery, tmp_path, nodes={}, trust=trust())
    async with proxied_node(fleet, fake, tmp_path) as proxy:
        assert proxy.url is not None and proxy.url != fake.url
        (node,) = (await fleet.http.get(fleet.url + "/fleet/status")).json()["nodes"]
        assert node["backend_url"] == proxy.url and node["signed"] is True and node["routable"]

        resp = await fleet.http.post(
            fleet.url + "/api/chat", json={"model": MODEL, "messages": USER, "stream": False}
        )
        assert resp.status_code == 200 and resp.headers["x-herd-node"] == "proxied", resp.text
        assert resp.json()["done"] is True
        async with fleet.http.stream(
            "POST", fleet.url + "/api/chat", json={"model": MODEL, "messages": USER}
        ) as stream:
            lines = [json.loads(line) async for line in stream.aiter_lines() if line]
        assert len(lines) > 2 and lines[-1]["done"] is True
        async with fleet.http.stream(
            "POST",
            fleet.url + "/v1/chat/completions",
            json={"model": MODEL, "messages": USER, "stream": True},
        ) as sse:
            events = [line async for line in sse.aiter_lines() if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]"
        pull = await fleet.http.post(
            fleet.url + "/api/pull", json={"model": MODEL, "node": "proxied", "stream": False}
        )
        assert pull.status_code == 200, pull.text
        assert [p for p, _ in fake.requests if p != "/api/show"] == [
            "/api/chat",
            "/api/chat",
            "/api/chat",
            "/api/pull",
        ]
        assert proxy.relayed == len(fake.requests) and proxy.refused == 0

        body = json.dumps({"model": MODEL, "messages": USER, "stream": False}).encode()
        direct = await fleet.http.post(proxy.url + "/api/chat", content=body)
        assert direct.status_code == 401
        message = direct.json()["error"]["message"]
        assert "only relays requests signed with the fleet token" in message and "missing" in message
        wrong = sign("a-different-fleet-token-4242", "POST", "/api/chat", body, time.time())
        refused = await fleet.http.post(proxy.url + "/api/chat", content=body, headers=wrong)
        assert refused.status_code == 401 and "wrong fleet-token signature" in refused.text
        good = sign(TOKEN, "POST", "/api/chat", body, time.time())
        tampered = await fleet.http.post(proxy.url + "/api/chat", content=body[:-1] + b" }", headers=good)
        assert tampered.status_code == 401
        ok = await fleet.http.post(proxy.url + "/api/chat", content=body, headers=good)
        assert ok.status_code == 200 and ok.json()["done"] is True
        again = await fleet.http.post(proxy.url + "/api/chat", content=body, headers=good)
        assert again.status_code == 401 and "replayed" in again.text
        root = await fleet.http.get(proxy.url + "/", headers=sign(TOKEN, "GET", "/", b"", time.time()))
        assert root.status_code == 404 and "only the backend's API" in root.text
        tags = await fleet.http.get(
            proxy.url + "/api/tags?x=1", headers=sign(TOKEN, "GET", "/api/tags?x=1", b"", time.time())
        )
        assert tags.status_code == 200 and tags.json()["models"][0]["name"] == MODEL
        assert tags.headers["content-type"].startswith("application/json")
        assert len(tags.headers.get_list("date")) == 1  # the backend's, not doubled by the proxy
        assert proxy.refused == 5 and len(fake.requests) == 5  # refused requests never reached the backend


async def test_client_leaving_mid_stream_cancels_the_backend_stream(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake = FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=0.05, num_chunks=1000)
    await nursery.start(fake.run)
    fleet = await start_fleet(nursery, tmp_path, nodes={}, trust=trust())
    async with proxied_node(fleet, fake, tmp_path):
        async with fleet.http.stream(
            "POST", fleet.url + "/api/chat", json={"model": MODEL, "messages": USER}
        ) as resp:
            async for _ in resp.aiter_lines():
                break
            assert fake.active_streams == 1
        with trio.fail_after(10):  # hang guard only
            while fake.cancelled_streams == 0 or fleet.router.slots.total():  # noqa: ASYNC110 (polls another server)
                await trio.sleep(0.01)
        assert fake.active_streams == 0 and fake.completed_streams == 0


async def test_a_router_without_the_token_is_told_why_the_proxied_node_refuses(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake = FakeOllama([FakeModel(MODEL)], loaded=[MODEL])
    await nursery.start(fake.run)
    fleet = await start_fleet(nursery, tmp_path, nodes={})  # no fleet token: it cannot sign
    async with proxied_node(fleet, fake, tmp_path) as proxy:
        resp = await fleet.http.post(
            fleet.url + "/api/chat", json={"model": MODEL, "messages": USER, "stream": False}
        )
        assert resp.status_code == 401 and "LAN proxy of herd node 'proxied'" in resp.text, resp.text
        assert "the router needs the same --fleet-token" in resp.text
        assert fake.requests == [] and proxy.refused >= 1

"""The fleet token through real servers on 127.0.0.1:0: forged, replayed, stale and wrong-token heartbeats are
refused (401) and leave /fleet/status unchanged; a real agent with the right token joins and serves a chat,
with a wrong one it never joins; the agent's command server only runs what the router signed; `--fleet-token
auto` creates a 0600 token file once and prints the join command; the token never shows in the config dump."""

from __future__ import annotations

import base64
import json
import stat
import sys
import time
from pathlib import Path

import httpx
import pytest
import trio
from conftest import heartbeat_json
from fake_media import PNG
from fake_ollama import FakeModel, FakeOllama
from harness import Fleet, openai_client, start_fleet

from herd.cli import build_parser, main, router_config
from herd.cli_node import node_config
from herd.config import MediaConfig, NodeConfig, Secret, TrustConfig
from herd.fleet.signing import fleet_id, sign
from herd.node.agent import Agent
from herd.node.commands import CommandServer
from herd.nursery.node import agent_client, build_agent

TOKEN = "fleet-token-for-the-tests-0123456789"
MODEL = "llama3.2:3b"


def trust(token: str = TOKEN) -> TrustConfig:
    return TrustConfig(fleet_token=Secret(token), fleet_id=fleet_id(token))


async def post(fleet: Fleet, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await fleet.http.post(
        fleet.url + "/heartbeat", content=body, headers={"content-type": "application/json", **headers}
    )


def beat_bytes(node_id: str, models: list[str]) -> bytes:
    return json.dumps(heartbeat_json(node_id, "http://127.0.0.1:9", models, models)).encode()


async def status(fleet: Fleet) -> dict[str, list[str]]:
    nodes = (await fleet.http.get(fleet.url + "/fleet/status")).json()["nodes"]
    return {n["node_id"]: n["models"] for n in nodes}


async def test_forged_replayed_stale_and_wrong_token_heartbeats_are_refused(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fleet = await start_fleet(nursery, tmp_path, nodes={}, trust=trust())
    body = beat_bytes("n1", [MODEL])
    good = sign(TOKEN, "POST", "/heartbeat", body, time.time())
    assert (await post(fleet, body, good)).status_code == 200
    before = await status(fleet)
    assert before == {"n1": [MODEL]}
    forged = beat_bytes("n1", ["evil:latest"])
    attempts = {
        "unsigned": (forged, {}),
        "replayed": (body, good),
        "tampered": (forged, good),
        "wrong token": (forged, sign("not-the-fleet-token-000", "POST", "/heartbeat", forged, time.time())),
        "stale": (forged, sign(TOKEN, "POST", "/heartbeat", forged, time.time() - 120)),
        "new node, unsigned": (beat_bytes("n2", [MODEL]), {}),
    }
    for what, (payload, headers) in attempts.items():
        resp = await post(fleet, payload, headers)
        assert resp.status_code == 401, (what, resp.text)
    assert await status(fleet) == before
    found = (await fleet.http.get(fleet.url + "/fleet/health")).json()["findings"]
    (refused,) = [f for f in found if f["check"] == "refused_heartbeats"]
    assert refused["subject"] == "127.0.0.1" and refused["title"].startswith("6 heartbeat(s) refused")
    settings = await fleet.http.get(fleet.url + "/fleet/settings")
    assert settings.status_code == 200 and TOKEN not in settings.text


async def run_agent(cfg: NodeConfig, fleet: Fleet, joined: bool) -> Agent:
    """Run a real agent (as `herd node` builds it) until it joined, or until the router refused it twice."""
    async with agent_client(cfg) as client:
        agent = build_agent(cfg, client)
        async with trio.open_nursery() as inner:
            await inner.start(agent.run)
            refusals = fleet.router.services.gate.refusals.items
            with trio.fail_after(20):  # hang guard only
                while (agent.sent < 1) if joined else (len(refusals) < 2):  # noqa: ASYNC110 (another task's progress)
                    await trio.sleep(0.02)
            inner.cancel_scope.cancel()
    return agent


def agent_cfg(tmp_path: Path, fake: FakeOllama, router_url: str, **kw: object) -> NodeConfig:
    return NodeConfig(
        node_id="agent-1",
        data_dir=tmp_path / "node",
        ollama_url=fake.url,
        router_url=router_url,
        heartbeat_interval=0.1,
        backoff_max=0.1,
        **kw,  # type: ignore[arg-type]
    )


async def test_agent_with_the_fleet_token_joins_and_serves_a_chat(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake = FakeOllama([FakeModel(MODEL)], loaded=[MODEL])
    await nursery.start(fake.run)
    fleet = await start_fleet(nursery, tmp_path, nodes={}, trust=trust())
    stranger = await run_agent(
        agent_cfg(tmp_path, fake, fleet.url, trust=trust("a-different-token-42424242")), fleet, False
    )
    assert stranger.sent == 0 and await status(fleet) == {}
    member = await run_agent(agent_cfg(tmp_path, fake, fleet.url, trust=trust()), fleet, True)
    assert member.sent >= 1 and await status(fleet) == {"agent-1": [MODEL]}
    resp = await fleet.http.post(
        fleet.url + "/api/chat",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False},
    )
    assert resp.status_code == 200 and resp.headers["x-herd-node"] == "agent-1"


IMAGE_SCRIPT = (
    "import sys, base64; open(sys.argv[1], 'wb').write(base64.b64decode({png!r}) + sys.argv[2].encode())"
)


async def test_command_server_runs_only_what_the_router_signed(nursery: trio.Nursery, tmp_path: Path) -> None:
    (tmp_path / "img.py").write_text(IMAGE_SCRIPT.format(png=base64.b64encode(PNG).decode()))
    media = MediaConfig(
        service_host="127.0.0.1",
        service_port=0,
        image_command=f"{sys.executable} {tmp_path / 'img.py'} {{output}} {{prompt}}",
        image_model="sd-cli",
    )
    commands = CommandServer(media, TOKEN)
    url = await nursery.start(commands.run)
    fleet = await start_fleet(nursery, tmp_path / "router", nodes={}, trust=trust())
    request = {"model": "sd-cli", "prompt": "owl", "response_format": "b64_json"}
    direct = await fleet.http.post(url + "/v1/images/generations", json=request)
    assert direct.status_code == 401 and "missing" in direct.json()["error"]["message"]
    body = json.dumps(
        heartbeat_json(
            "box",
            "http://127.0.0.1:9",
            [],
            media=[{"kind": "image", "model": "sd-cli", "url": url, "api": "openai"}],
        )
    ).encode()
    assert (await post(fleet, body, sign(TOKEN, "POST", "/heartbeat", body, time.time()))).status_code == 200
    with openai_client(fleet.url) as c:
        res = await trio.to_thread.run_sync(
            lambda: c.images.generate(model="sd-cli", prompt="owl", response_format="b64_json")
        )
    assert base64.b64decode(res.data[0].b64_json or "") == PNG + b"owl"


def test_fleet_token_auto_creates_a_private_file_once_and_prints_the_join_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--fleet-token", "auto", "--data-dir", str(tmp_path), "--port", "11999"]
    cfg = router_config(build_parser({}).parse_args(argv), {})
    path = tmp_path / "fleet-token"
    token = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(token) >= 32
    assert cfg.trust.token == token and cfg.trust.fleet_id == fleet_id(token)
    printed = capsys.readouterr().err
    assert f"--fleet-token {token}" in printed and "herd node --router-url http://" in printed
    assert ":11999" in printed
    again = router_config(build_parser({}).parse_args(argv), {})
    assert again.trust.token == token and capsys.readouterr().err == ""
    assert token not in repr(again) and token not in str(again)


def test_token_flags_and_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tok").write_text(TOKEN + "\n")
    env = {"FLEET_TOKEN_FILE": str(tmp_path / "tok"), "FLEET_CA_FILE": "/ca.pem"}
    ncfg = node_config(build_parser(env).parse_args(["node", "--data-dir", str(tmp_path)]), env)
    assert (
        ncfg.trust.token == TOKEN
        and ncfg.trust.fleet_id == fleet_id(TOKEN)
        and ncfg.trust.ca_file == "/ca.pem"
    )
    env = {"FLEET_TOKEN": TOKEN, "FLEET_ID": "lab", "FLEET_CERTFILE": "c.pem", "FLEET_KEYFILE": "k.pem"}
    rcfg = router_config(build_parser(env).parse_args(["run", "--data-dir", str(tmp_path)]), env)
    assert (rcfg.trust.token, rcfg.trust.fleet_id, rcfg.trust.scheme) == (TOKEN, "lab", "https")
    plain = router_config(build_parser({}).parse_args(["run", "--data-dir", str(tmp_path)]), {})
    assert plain.trust.token is None and plain.trust.fleet_id == "herd" and plain.trust.scheme == "http"
    assert main(["node", "--fleet-token", "auto", "--data-dir", str(tmp_path)], {}) == 2
    assert main(["run", "--fleet-token", "short", "--data-dir", str(tmp_path)], {}) == 2
    assert main(["run", "--certfile", "c.pem", "--data-dir", str(tmp_path)], {}) == 2
    err = capsys.readouterr().err
    assert "auto is for herd run" in err and "at least 16" in err and "go together" in err

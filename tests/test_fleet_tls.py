"""TLS: `herd run --certfile/--keyfile` serves HTTPS (a self-signed CA made by trustme for 127.0.0.1), and a
real agent given `--ca-file` joins it over https:// and serves a chat through it."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
import trio
import trustme
from fake_ollama import FakeModel, FakeOllama

from herd.config import NodeConfig, RouterConfig, TrustConfig
from herd.nursery.node import agent_client, build_agent
from herd.nursery.router import Router

MODEL = "llama3.2:3b"


async def test_https_router_with_a_self_signed_certificate_serves_a_real_agent(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile, cafile = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    fake = FakeOllama([FakeModel(MODEL)], loaded=[MODEL])
    await nursery.start(fake.run)
    tls = TrustConfig(certfile=str(certfile), keyfile=str(keyfile))
    router = Router(
        RouterConfig(
            data_dir=tmp_path / "r", host="127.0.0.1", port=0, local_node=False, mdns=False, trust=tls
        )
    )
    (url,) = await nursery.start(router.run)
    assert url.startswith("https://127.0.0.1:")
    async with httpx.AsyncClient(trust_env=False) as untrusting:
        with pytest.raises(httpx.ConnectError):  # the certificate is not trusted without the CA
            await untrusting.get(url + "/fleet/status")
    cfg = NodeConfig(
        node_id="tls-node",
        data_dir=tmp_path / "node",
        ollama_url=fake.url,
        router_url=url,
        heartbeat_interval=0.1,
        trust=TrustConfig(ca_file=str(cafile)),
    )
    async with agent_client(cfg) as client:
        agent = build_agent(cfg, client)
        async with trio.open_nursery() as inner:
            await inner.start(agent.run)
            with trio.fail_after(20):  # hang guard only
                while agent.sent < 1:  # noqa: ASYNC110 (another task's progress)
                    await trio.sleep(0.02)
            inner.cancel_scope.cancel()
    verify = ssl.create_default_context(cafile=str(cafile))
    async with httpx.AsyncClient(trust_env=False, verify=verify) as http:
        nodes = (await http.get(url + "/fleet/status")).json()["nodes"]
        assert [n["node_id"] for n in nodes] == ["tls-node"]
        resp = await http.post(
            url + "/api/chat",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False},
        )
    assert resp.status_code == 200 and resp.headers["x-herd-node"] == "tls-node"

"""Heartbeat trust through a real router on 127.0.0.1:0, with no configuration: a heartbeat advertising another
host's address is refused (403) and shows in /fleet/health; a node id registered from 127.0.0.1 cannot be taken
over from 127.0.0.2 (409) while it is online."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio
from conftest import heartbeat_json
from harness import start_fleet


async def nodes(fleet_url: str, http: httpx.AsyncClient) -> dict[str, str]:
    status = (await http.get(fleet_url + "/fleet/status")).json()
    return {n["node_id"]: n["backend_url"] for n in status["nodes"]}


async def findings(fleet_url: str, http: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    found = (await http.get(fleet_url + "/fleet/health")).json()["findings"]
    return {f["subject"]: f for f in found if f["check"] == "refused_heartbeats"}


async def test_heartbeat_advertising_another_address_is_refused(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    before = await nodes(fleet.url, fleet.http)
    for target in (
        {"backend_url": "http://10.1.2.3:11434"},
        {"media": [{"kind": "image", "model": "sd", "url": "http://10.1.2.3:7860", "api": "openai"}]},
    ):
        body = heartbeat_json("intruder", "http://127.0.0.1:11434", ["m"])
        body.update(target)
        resp = await fleet.http.post(fleet.url + "/heartbeat", json=body)
        assert resp.status_code == 403, resp.text
        message = resp.json()["error"]
        assert "10.1.2.3" in message and "expected host 127.0.0.1" in message
    # the node list is unchanged
    assert await nodes(fleet.url, fleet.http) == before
    found = await findings(fleet.url, fleet.http)
    assert found["intruder from 127.0.0.1"]["title"].startswith("2 heartbeat(s) refused")
    assert "10.1.2.3" in found["intruder from 127.0.0.1"]["detail"]


async def test_node_id_takeover_from_another_address_is_refused(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fleet = await start_fleet(nursery, tmp_path)  # n1 registered from 127.0.0.1
    before = await nodes(fleet.url, fleet.http)
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(transport=transport, trust_env=False) as other:
        body = heartbeat_json("n1", "http://127.0.0.2:11434", ["evil:latest"])
        resp = await other.post(fleet.url + "/heartbeat", json=body)
        assert resp.status_code == 409, resp.text
        assert "registered from 127.0.0.1" in resp.json()["error"]
        # a new id from that address is fine
        fresh = await other.post(
            fleet.url + "/heartbeat", json=heartbeat_json("n2", "http://127.0.0.2:1", [])
        )
        assert fresh.status_code == 200, fresh.text
    assert (await nodes(fleet.url, fleet.http))["n1"] == before["n1"]
    found = await findings(fleet.url, fleet.http)
    assert found["n1 from 127.0.0.2"]["severity"] == "critical"
    await fleet.beat("n1")  # the owner keeps reporting

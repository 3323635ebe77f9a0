"""Test harness: a real router (hypercorn on 127.0.0.1:0) and fake Ollama nodes inside the test's nursery."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import trio
from conftest import heartbeat_json
from fake_ollama import FakeModel, FakeOllama

from herd.config import RouterConfig
from herd.nursery.router import Router


@dataclasses.dataclass
class Fleet:
    router: Router
    url: str
    nodes: dict[str, FakeOllama]
    http: httpx.AsyncClient

    async def beat(self, node_id: str, **extra: Any) -> None:
        """Send the heartbeat a node agent would send for the fake node `node_id`."""
        fake = self.nodes[node_id]
        models = [m.name for m in fake.model_specs()]
        body = heartbeat_json(node_id, fake.url, models, list(fake.loaded), **extra)
        resp = await self.http.post(self.url + "/heartbeat", content=json.dumps(body))
        assert resp.status_code == 200, resp.text


async def _client(*, task_status: trio.TaskStatus[httpx.AsyncClient] = trio.TASK_STATUS_IGNORED) -> None:
    """An httpx client that closes when the test's nursery is cancelled."""
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        task_status.started(client)
        await trio.sleep_forever()


async def start_fleet(
    nursery: trio.Nursery,
    tmp_path: Path,
    nodes: dict[str, FakeOllama] | None = None,
    **cfg: Any,
) -> Fleet:
    nodes = (
        nodes if nodes is not None else {"n1": FakeOllama([FakeModel("llama3.2:3b")], loaded=["llama3.2:3b"])}
    )
    for fake in nodes.values():
        await nursery.start(fake.run)
    config = RouterConfig(data_dir=tmp_path, host="127.0.0.1", port=0, local_node=False, mdns=False, **cfg)
    router = Router(config)
    urls = await nursery.start(router.run)
    http = await nursery.start(_client)
    fleet = Fleet(router=router, url=urls[0], nodes=nodes, http=http)
    for node_id in nodes:
        await fleet.beat(node_id)
    return fleet


@contextlib.contextmanager
def ollama_client(url: str) -> Iterator[ollama.Client]:
    """The official sync Ollama client (use it from `trio.to_thread`), closed afterwards."""
    c = ollama.Client(host=url, trust_env=False)
    try:
        yield c
    finally:
        c.close()


@contextlib.contextmanager
def openai_client(url: str) -> Iterator[openai.OpenAI]:
    """The official sync OpenAI client on the router's `/v1` (use it from `trio.to_thread`), closed afterwards."""
    c = openai.OpenAI(base_url=url + "/v1", api_key="herd", max_retries=0)
    try:
        yield c
    finally:
        c.close()

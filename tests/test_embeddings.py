"""Embeddings through the router: Ollama's /api/embed and legacy /api/embeddings, OpenAI's /v1/embeddings."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import ollama
import openai
import pytest
import trio
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

MODEL = "nomic-embed-text:latest"


def fleet_nodes() -> dict[str, FakeOllama]:
    return {"n1": FakeOllama([FakeModel(MODEL, capabilities=("embedding",))], loaded=[MODEL])}


async def test_ollama_embed_and_legacy_shapes(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, fleet_nodes())
    client = ollama.Client(host=fleet.url, trust_env=False)
    try:
        out = await trio.to_thread.run_sync(
            lambda: client.embed(model=MODEL, input=["alpha", "beta", "alpha"])
        )
    finally:
        client.close()
    assert len(out.embeddings) == 3 and out.embeddings[0] == out.embeddings[2] != out.embeddings[1]
    resp = await fleet.http.post(fleet.url + "/api/embeddings", json={"model": MODEL, "prompt": "alpha"})
    assert resp.status_code == 200 and set(resp.json()) == {"embedding"}
    assert resp.json()["embedding"] == out.embeddings[0]
    assert resp.headers["x-herd-node"] == "n1"


async def test_openai_embeddings_float_and_base64(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, fleet_nodes())
    client = openai.OpenAI(base_url=fleet.url + "/v1", api_key="herd", max_retries=0)
    try:
        floats = await trio.to_thread.run_sync(
            lambda: client.embeddings.create(model=MODEL, input=["one", "two"], encoding_format="float")
        )
        packed = await trio.to_thread.run_sync(lambda: client.embeddings.create(model=MODEL, input="one"))
    finally:
        client.close()
    assert [d.index for d in floats.data] == [0, 1] and floats.usage.prompt_tokens > 0
    # the official client asks for base64 by default and decodes it itself
    assert packed.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)
    raw = await fleet.http.post(
        fleet.url + "/v1/embeddings", json={"model": MODEL, "input": "one", "encoding_format": "base64"}
    )
    blob = base64.b64decode(raw.json()["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(blob) // 4}f", blob)) == pytest.approx(
        floats.data[0].embedding, rel=1e-6
    )


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/embeddings", {"model": MODEL, "input": [[1, 2, 3]]}, "input"),
        ("/v1/embeddings", {"model": MODEL, "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ("/v1/embeddings", {"model": MODEL}, "input"),
        ("/api/embed", {"model": MODEL, "input": 5}, "input"),
        ("/api/embed", {"model": MODEL, "input": "x", "dimensions": 0}, "dimensions"),
        ("/api/embeddings", {"model": MODEL, "prompt": ["x"]}, "prompt"),
    ],
)
async def test_bad_embedding_requests_are_400(
    nursery: trio.Nursery, tmp_path: Path, path: str, body: dict, param: str
) -> None:
    fleet = await start_fleet(nursery, tmp_path, fleet_nodes())
    resp = await fleet.http.post(fleet.url + path, json=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["param"] == param if isinstance(error, dict) else param in error


async def test_unknown_embedding_model_is_404(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, fleet_nodes())
    resp = await fleet.http.post(fleet.url + "/v1/embeddings", json={"model": "ghost", "input": "x"})
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "model_not_found"

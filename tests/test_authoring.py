"""`ollama create` / `ollama push` and blob uploads through a real router, with the official `ollama` client."""

from __future__ import annotations

import hashlib
from pathlib import Path

import ollama
import pytest
import trio
from fake_ollama import FakeModel, FakeOllama
from fake_openai import FakeOpenAI
from harness import ollama_client, start_fleet
from test_openai_backend import join

from herd.fleet.heartbeat import parse_heartbeat
from herd.fleet.state import FleetSnapshot, apply_heartbeat
from herd.routing.authoring import BlobBook, create_targets

MODEL = "llama3.2:3b"
HOST = {"cpu_count": 2, "mem_total": 64 * 2**30, "disk_free": 2**40, "load": [0, 0, 0]}


async def two_node_fleet(nursery: trio.Nursery, tmp_path: Path):
    nodes = {"a": FakeOllama([FakeModel(MODEL)]), "b": FakeOllama([FakeModel("qwen3:8b")])}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    await fleet.beat("a", host={**HOST, "mem_available": 8 * 2**30})
    await fleet.beat("b", host={**HOST, "mem_available": 48 * 2**30})  # the pull target
    return fleet, nodes


async def test_create_from_a_base_model_runs_where_the_base_is(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet, nodes = await two_node_fleet(nursery, tmp_path)
    with ollama_client(fleet.url) as c:
        steps = await trio.to_thread.run_sync(
            lambda: list(c.create(model="mario", from_=MODEL, system="You are Mario.", stream=True))
        )
        assert [s.status for s in steps][-2:] == ["writing manifest", "success"]
        assert "creating system layer" in [s.status for s in steps]
        assert "mario:latest" in nodes["a"].models and "mario:latest" not in nodes["b"].models
        assert nodes["a"].requests[-1][1] == {
            "model": "mario",
            "from": MODEL,
            "system": "You are Mario.",
            "stream": True,
        }
        listed = await trio.to_thread.run_sync(c.list)  # no heartbeat since: the router's own edit
        assert "mario:latest" in [m.model for m in listed.models]
        done = await trio.to_thread.run_sync(lambda: c.create(model="luigi", from_=MODEL, stream=False))
        assert done.status == "success" and "luigi:latest" in nodes["a"].models
        with pytest.raises(ollama.ResponseError):
            await trio.to_thread.run_sync(lambda: c.create(model="x", stream=False))  # neither from nor files


async def test_create_with_a_file_goes_where_the_blob_went(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet, nodes = await two_node_fleet(nursery, tmp_path)
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    with ollama_client(fleet.url) as c:
        assert await trio.to_thread.run_sync(lambda: c.create_blob(gguf)) == digest
        assert digest in nodes["b"].blobs and digest not in nodes["a"].blobs  # the pull target got it
        head = await fleet.http.head(fleet.url + f"/api/blobs/{digest}")
        assert head.status_code == 200 and head.headers["x-herd-node"] == "b"
        steps = await trio.to_thread.run_sync(
            lambda: list(c.create(model="tiny", files={"tiny.gguf": digest}, stream=True))
        )
        assert [s.status for s in steps] == [
            "parsing GGUF",
            f"using existing layer {digest}",
            "writing manifest",
            "success",
        ]
        assert "tiny:latest" in nodes["b"].models
        # upload to a named node, then create there
        resp = await fleet.http.post(fleet.url + f"/api/blobs/{digest}?node=a", content=gguf.read_bytes())
        assert resp.status_code == 201 and digest in nodes["a"].blobs
    bad = "sha256:" + "0" * 64
    resp = await fleet.http.post(fleet.url + f"/api/blobs/{bad}", content=b"not it")
    assert resp.status_code == 400 and "digest mismatch" in resp.json()["error"]
    assert (await fleet.http.head(fleet.url + f"/api/blobs/{bad}")).status_code == 404


async def test_push_relays_progress_from_a_node_that_has_the_model(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fleet, nodes = await two_node_fleet(nursery, tmp_path)
    with ollama_client(fleet.url) as c:
        steps = await trio.to_thread.run_sync(lambda: list(c.push("qwen3:8b", stream=True)))
        assert [s.status for s in steps] == [
            "retrieving manifest",
            "starting upload",
            "pushing manifest",
            "success",
        ]
        assert nodes["b"].pushed == ["qwen3:8b"] and nodes["a"].pushed == []
        with pytest.raises(ollama.ResponseError) as info:
            await trio.to_thread.run_sync(lambda: c.push("ghost:1b"))
        assert info.value.status_code == 404


async def test_openai_nodes_refuse_authoring(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, {})
    fake = FakeOpenAI("smollm2")
    await nursery.start(fake.run)
    await join(fleet, "llama", fake)
    resp = await fleet.http.post(
        fleet.url + "/api/create", json={"model": "m", "from": "smollm2", "node": "llama"}
    )
    assert resp.status_code == 400 and "OpenAI-compatible" in resp.json()["error"]
    resp = await fleet.http.post(fleet.url + "/api/blobs/sha256:" + "1" * 64 + "?node=llama", content=b"x")
    assert resp.status_code == 400
    resp = await fleet.http.post(fleet.url + "/api/create", json={"model": "m", "from": "smollm2"})
    assert resp.status_code == 503  # no Ollama node to create on


def test_blob_book_is_bounded_and_files_on_two_nodes_are_refused() -> None:
    book = BlobBook(limit=2)
    for d in ("d1", "d2", "d3"):
        book.remember(d, "a")
    assert len(book) == 2 and book.where("d1") is None and book.where("d3") == "a"
    from conftest import heartbeat_json

    snap = FleetSnapshot()
    for node_id in ("a", "b"):
        snap = apply_heartbeat(
            snap, parse_heartbeat(heartbeat_json(node_id, f"http://{node_id}", [MODEL])), 1.0
        )
    book.remember("d2", "b")
    with pytest.raises(Exception, match="different nodes"):
        create_targets(snap, {"model": "m", "files": {"x": "d2", "y": "d3"}}, book)
    assert [n.node_id for n in create_targets(snap, {"model": "m", "from": MODEL}, book)] == ["a", "b"]

"""The Ollama dialect end to end: official `ollama` client → real router → fake Ollama nodes."""

from __future__ import annotations

import json
from pathlib import Path

import ollama
import pytest
import trio
from conftest import heartbeat_json
from fake_ollama import FakeModel, FakeOllama
from harness import ollama_client as client
from harness import start_fleet

from herd.config import RouterConfig
from herd.nursery.router import Router

MODEL = "llama3.2:3b"


async def test_chat_stream_and_not_with_official_client(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    fake = fleet.nodes["n1"]
    with client(fleet.url) as c:
        msgs = [{"role": "user", "content": "hi"}]

        whole = await trio.to_thread.run_sync(lambda: c.chat(model=MODEL, messages=msgs, stream=False))
        assert whole.message.content == fake.reply
        assert whole.done and whole.done_reason == "stop" and whole.eval_count and whole.total_duration

        parts = await trio.to_thread.run_sync(lambda: list(c.chat(model=MODEL, messages=msgs, stream=True)))
        assert "".join(p.message.content for p in parts) == fake.reply
        assert len(parts) > 2 and parts[-1].done and parts[-1].prompt_eval_count
        assert all(not p.done for p in parts[:-1])


async def test_generate_stream_and_not(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c:
        whole = await trio.to_thread.run_sync(lambda: c.generate(model=MODEL, prompt="hi", stream=False))
        assert whole.response == fleet.nodes["n1"].reply and whole.done
        parts = await trio.to_thread.run_sync(lambda: list(c.generate(model=MODEL, prompt="hi", stream=True)))
        assert "".join(p.response for p in parts) == fleet.nodes["n1"].reply and parts[-1].done


async def test_listings_show_version(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {
        "n1": FakeOllama([FakeModel(MODEL), FakeModel("qwen3:8b")], loaded=[MODEL], version="0.12.4"),
        "n2": FakeOllama([FakeModel(MODEL), FakeModel("phi4:14b")], version="0.12.3"),
    }
    fleet = await start_fleet(nursery, tmp_path, nodes)
    with client(fleet.url) as c:
        listed = await trio.to_thread.run_sync(c.list)
        assert sorted(m.model for m in listed.models) == sorted([MODEL, "qwen3:8b", "phi4:14b"])
        assert all(m.size and m.digest and m.details.family for m in listed.models)
        running = await trio.to_thread.run_sync(c.ps)
        assert [m.model for m in running.models] == [MODEL]
        shown = await trio.to_thread.run_sync(lambda: c.show("phi4:14b"))
        assert shown.details.family and shown.modelinfo
        resp = await fleet.http.get(fleet.url + "/api/version")
        assert resp.json() == {"version": "0.12.3"}
        root = await fleet.http.get(fleet.url + "/")
        assert root.text == "Ollama is running"
        head = await fleet.http.head(fleet.url + "/")
        assert head.status_code == 200
        with pytest.raises(ollama.ResponseError) as info:
            await trio.to_thread.run_sync(lambda: c.show("nope:1b"))
        assert info.value.status_code == 404


async def test_every_response_names_node_and_model(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    for stream in (True, False):
        resp = await fleet.http.post(
            fleet.url + "/api/chat", json={"model": "llama3.2:3b", "messages": [], "stream": stream}
        )
        assert resp.status_code == 200
        assert resp.headers["x-herd-node"] == "n1"
        assert resp.headers["x-herd-model"] == MODEL
        expected = "application/x-ndjson" if stream else "application/json"
        assert resp.headers["content-type"].startswith(expected)


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/api/chat", b"{not json", "invalid JSON"),
        ("/api/chat", b"", "missing request body"),
        ("/api/chat", b"[1, 2]", "object"),
        ("/api/chat", b'{"messages": []}', "model"),
        ("/api/chat", b'{"model": 7}', "model"),
        ("/api/chat", b'{"model": "m", "messages": "hi"}', "messages"),
        ("/api/chat", b'{"model": "m", "messages": [{"role": "user", "content": 5}]}', "content"),
        ("/api/generate", b'{"model": "m", "prompt": ["x"]}', "prompt"),
        ("/api/generate", b'{"model": "m", "stream": "yes"}', "stream"),
        ("/api/show", b"{}", "model"),
        ("/heartbeat", b'{"node_id": "x"}', "backend_url"),
    ],
)
async def test_bad_input_is_a_clear_400(
    nursery: trio.Nursery, tmp_path: Path, path: str, body: bytes, needle: str
) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    resp = await fleet.http.post(fleet.url + path, content=body)
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("application/json")
    error = resp.json()["error"]
    assert isinstance(error, str) and needle.lower() in error.lower()


async def test_unknown_route_and_method_are_json(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    resp = await fleet.http.get(fleet.url + "/api/nothing")
    assert resp.status_code == 404 and "error" in resp.json()
    resp = await fleet.http.get(fleet.url + "/api/chat")
    assert resp.status_code == 405 and "error" in resp.json()


async def test_unknown_model_404_and_offline_model_503(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    resp = await fleet.http.post(fleet.url + "/api/chat", json={"model": "ghost:1b", "messages": []})
    assert resp.status_code == 404 and "ghost" in resp.json()["error"]
    await fleet.beat("n1", draining=True)
    resp = await fleet.http.post(fleet.url + "/api/chat", json={"model": MODEL, "messages": []})
    assert resp.status_code == 503
    assert int(resp.headers["retry-after"]) >= 1
    assert "error" in resp.json()


async def test_failure_before_first_byte_is_retried_elsewhere(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"a": FakeOllama([FakeModel(MODEL)], loaded=[MODEL]), "b": FakeOllama([FakeModel(MODEL)])}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    nodes["a"].fail_next.append((500, "boom"))
    resp = await fleet.http.post(
        fleet.url + "/api/chat", json={"model": MODEL, "messages": [], "stream": False}
    )
    assert resp.status_code == 200 and resp.headers["x-herd-node"] == "b"
    assert resp.json()["message"]["content"] == nodes["b"].reply


async def test_unreachable_node_is_retried_elsewhere(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"a": FakeOllama([FakeModel(MODEL)], loaded=[MODEL]), "b": FakeOllama([FakeModel(MODEL)])}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    # "a" advertises a port nobody listens on.
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    body = json.loads(json.dumps({"backend_url": dead}))
    await fleet.beat("a", **body)
    resp = await fleet.http.post(fleet.url + "/api/generate", json={"model": MODEL, "prompt": "x"})
    assert resp.status_code == 200 and resp.headers["x-herd-node"] == "b"


async def test_callers_fault_is_passed_on_not_retried(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"a": FakeOllama([FakeModel(MODEL)], loaded=[MODEL]), "b": FakeOllama([FakeModel(MODEL)])}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    nodes["a"].fail_next.append((400, "invalid option"))
    resp = await fleet.http.post(fleet.url + "/api/chat", json={"model": MODEL, "messages": []})
    assert resp.status_code == 400 and resp.json() == {"error": "invalid option"}
    assert not nodes["b"].requests


async def test_every_node_failing_is_502(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    fleet.nodes["n1"].fail_next.append((500, "broken"))
    resp = await fleet.http.post(fleet.url + "/api/chat", json={"model": MODEL, "messages": []})
    assert resp.status_code == 502 and "broken" in resp.json()["error"]  # a node's 500 is herd's 502


async def test_failure_after_first_byte_ends_with_error_line(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    fleet.nodes["n1"].fail_after_chunks = 2
    resp = await fleet.http.post(fleet.url + "/api/chat", json={"model": MODEL, "messages": []})
    assert resp.status_code == 200
    lines = [json.loads(x) for x in resp.text.splitlines()]
    assert len(lines) == 3 and "error" in lines[-1] and "n1" in lines[-1]["error"]
    with client(fleet.url) as c:
        fleet.nodes["n1"].fail_after_chunks = 2
        with pytest.raises(ollama.ResponseError):
            await trio.to_thread.run_sync(lambda: list(c.chat(model=MODEL, messages=[], stream=True)))


async def test_client_disconnect_cancels_upstream(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"n1": FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=0.05, num_chunks=1000)}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    fake = nodes["n1"]
    async with fleet.http.stream(
        "POST", fleet.url + "/api/chat", json={"model": MODEL, "messages": []}
    ) as resp:
        async for _ in resp.aiter_lines():
            break
        assert fleet.router.slots.total() == 1
        assert fake.active_streams == 1
    with trio.fail_after(10):  # hang guard only
        while fake.cancelled_streams == 0 or fleet.router.slots.total():  # noqa: ASYNC110 (polls another server)
            await trio.sleep(0.01)
    assert fake.active_streams == 0 and fake.completed_streams == 0


async def test_shutdown_is_prompt_with_idle_keepalive(tmp_path: Path) -> None:
    """quart-trio + hypercorn trap: without the shielded final send, an idle keep-alive connection keeps
    graceful shutdown waiting for the whole graceful_timeout (an hour here)."""
    with trio.fail_after(30):  # hang guard only: the bug waits 3600 s
        async with trio.open_nursery() as nursery:
            router = Router(
                RouterConfig(
                    data_dir=tmp_path,
                    host="127.0.0.1",
                    port=0,
                    local_node=False,
                    mdns=False,
                    graceful_timeout=3600.0,
                )
            )
            urls = await nursery.start(router.run)
            host, port = urls[0].removeprefix("http://").split(":")
            with trio.socket.socket() as sock:
                await sock.connect((host, int(port)))
                for _ in range(2):  # two requests on one keep-alive connection, then idle
                    await sock.send(b"GET /api/version HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    reply = b""
                    while not reply.endswith(b"}"):
                        reply += await sock.recv(65536)
                    assert reply.startswith(b"HTTP/1.1 200")
                router.stop()
                assert await sock.recv(65536) == b""  # the server closed the idle connection
        # leaving the nursery means router.run returned: shutdown finished


async def test_long_generation_is_not_cut(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Quart's RESPONSE_TIMEOUT (60 s) also applies to streamed bodies; a 100 s generation must arrive whole."""
    nodes = {"n1": FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=10.0, num_chunks=10)}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    start = trio.current_time()
    resp = await fleet.http.post(fleet.url + "/api/chat", json={"model": MODEL, "messages": []})
    lines = [json.loads(x) for x in resp.text.splitlines()]
    assert trio.current_time() - start >= 90
    assert lines[-1]["done"] is True and "error" not in lines[-1]
    assert len(lines) == 11


async def test_a_model_too_large_for_every_node_says_which_constraint_eliminated_each(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    nodes = {name: FakeOllama([FakeModel("huge:70b")]) for name in ("a", "b", "c")}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    host = {"cpu_count": 2, "mem_total": 16 * 2**30, "mem_available": 12 * 2**30, "disk_free": 2**40}
    for name in nodes:
        body = heartbeat_json(name, nodes[name].url, ["huge:70b"], host=host, draining=name == "c")
        body["models"][0]["size"] = 40 * 2**30  # more than 0.9 x 16 GiB
        assert (await fleet.http.post(fleet.url + "/heartbeat", json=body)).status_code == 200
    resp = await fleet.http.post(fleet.url + "/api/chat", json={"model": "huge:70b", "messages": []})
    assert resp.status_code == 503
    error = resp.json()["error"]
    assert "is online" not in error
    assert "a: does not fit in memory" in error and "b: does not fit in memory" in error
    assert "c: draining" in error

"""The fake Ollama node that router tests and the bench stand on: shapes, errors, knobs, stream accounting."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import ollama
import pytest
import trio
from fake_ollama import FakeModel, FakeOllama, keep_alive_seconds, rfc3339

MODEL = "llama3.2:3b"
THINKER = FakeModel(
    "qwen3:8b", family="qwen3", parameter_size="8.2B", capabilities=("completion", "thinking")
)
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
USER = [{"role": "user", "content": "hi there"}]


async def start(
    nursery: trio.Nursery, fake: FakeOllama | None = None
) -> tuple[FakeOllama, httpx.AsyncClient]:
    fake = fake or FakeOllama([FakeModel(MODEL), THINKER], loaded=[MODEL])
    url = await nursery.start(fake.run)
    assert url == fake.url and url.startswith("http://127.0.0.1:")
    http = httpx.AsyncClient(base_url=url, trust_env=False, timeout=30)
    return fake, http


def lines(resp: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(x) for x in resp.text.splitlines()]


async def test_listings(nursery: trio.Nursery) -> None:
    _, http = await start(nursery)
    async with http:
        root = await http.get("/")
        assert root.text == "Ollama is running" and root.headers["content-type"].startswith("text/plain")
        assert (await http.head("/")).status_code == 200
        assert (await http.get("/api/version")).json() == {"version": "0.12.3"}
        tags = (await http.get("/api/tags")).json()["models"]
        assert [t["name"] for t in tags] == [MODEL, "qwen3:8b"]
        first = tags[0]
        assert (
            first["model"] == MODEL and first["size"] == 2_000_000_000 and STAMP.match(first["modified_at"])
        )
        assert re.fullmatch(r"[0-9a-f]{64}", first["digest"])
        details = {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"]}
        assert first["details"] == details | {"parameter_size": "3.2B", "quantization_level": "Q4_K_M"}
        ps = (await http.get("/api/ps")).json()["models"]
        assert [p["name"] for p in ps] == [MODEL]
        assert {"model", "size", "digest", "details", "expires_at", "size_vram", "context_length"} <= set(
            ps[0]
        )
        assert STAMP.match(ps[0]["expires_at"]) and ps[0]["context_length"] == 4096


async def test_show(nursery: trio.Nursery) -> None:
    fake, http = await start(nursery)
    async with http:
        shown = (await http.post("/api/show", json={"model": "qwen3:8b"})).json()
        assert {"license", "modelfile", "parameters", "template", "details", "modified_at"} <= set(shown)
        assert shown["model_info"]["general.architecture"] == "qwen3"
        assert shown["model_info"]["qwen3.context_length"] == 4096
        assert shown["capabilities"] == ["completion", "thinking"]
        missing = await http.post("/api/show", json={"model": "nope:1b"})
        assert missing.status_code == 404 and missing.json() == {"error": "model 'nope:1b' not found"}
        empty = await http.post("/api/show", json={})
        assert empty.status_code == 400 and empty.json() == {"error": "model is required"}
        assert fake.requests[-1] == ("/api/show", {})


async def test_unknown_route_and_method(nursery: trio.Nursery) -> None:
    _, http = await start(nursery)
    async with http:
        assert (await http.get("/api/nothing")).status_code == 404
        assert (await http.get("/api/chat")).status_code == 405


async def test_chat_stream(nursery: trio.Nursery) -> None:
    fake, http = await start(nursery)
    async with http:
        resp = await http.post("/api/chat", json={"model": MODEL, "messages": USER})
        assert resp.headers["content-type"] == "application/x-ndjson"
        parts = lines(resp)
        assert [p["message"]["content"] for p in parts[:-1]] == ["Hello", " from", " the", " fake", " node!"]
        for p in parts[:-1]:
            assert p["model"] == MODEL and STAMP.match(p["created_at"]) and p["done"] is False
            assert p["message"]["role"] == "assistant" and set(p) == {
                "model",
                "created_at",
                "message",
                "done",
            }
        last = parts[-1]
        assert last["done"] is True and last["done_reason"] == "stop" and last["message"]["content"] == ""
        assert last["eval_count"] == 5 and last["prompt_eval_count"] > 0
        assert (
            last["total_duration"]
            >= last["load_duration"] + last["prompt_eval_duration"] + last["eval_duration"]
        )
        assert fake.requests == [("/api/chat", {"model": MODEL, "messages": USER})]
        assert (fake.active_streams, fake.completed_streams, fake.cancelled_streams) == (0, 1, 0)


async def test_chat_and_generate_not_streamed(nursery: trio.Nursery) -> None:
    _, http = await start(nursery)
    async with http:
        resp = await http.post("/api/chat", json={"model": MODEL, "messages": USER, "stream": False})
        assert resp.headers["content-type"].startswith("application/json")
        whole = resp.json()
        assert whole["message"] == {"role": "assistant", "content": "Hello from the fake node!"}
        assert whole["done"] and whole["done_reason"] == "stop" and whole["eval_count"] == 5
        gen = (
            await http.post("/api/generate", json={"model": MODEL, "prompt": "hi", "stream": False})
        ).json()
        assert gen["response"] == "Hello from the fake node!" and gen["context"] and gen["eval_duration"] > 0


async def test_generate_stream_num_chunks_and_num_predict(nursery: trio.Nursery) -> None:
    fake = FakeOllama([MODEL], reply="a b", num_chunks=5)
    _, http = await start(nursery, fake)
    async with http:
        parts = lines(await http.post("/api/generate", json={"model": MODEL, "prompt": "x"}))
        assert "".join(p["response"] for p in parts) == "a b a b a"
        assert set(parts[0]) == {"model", "created_at", "response", "done"}
        assert parts[-1]["done_reason"] == "stop" and isinstance(parts[-1]["context"], list)
        body = {"model": MODEL, "prompt": "x", "options": {"num_predict": 2}}
        parts = lines(await http.post("/api/generate", json=body))
        assert len(parts) == 3 and parts[-1]["done_reason"] == "length" and parts[-1]["eval_count"] == 2


async def test_tool_call_and_thinking(nursery: trio.Nursery) -> None:
    _, http = await start(nursery)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    ask = [{"role": "user", "content": "What is the Weather in Paris?"}]
    async with http:
        parts = lines(await http.post("/api/chat", json={"model": MODEL, "messages": ask, "tools": tools}))
        calls = [c for p in parts for c in p["message"].get("tool_calls", [])]
        assert calls == [{"function": {"name": "get_weather", "arguments": {"location": "Paris"}}}]
        body = {"model": MODEL, "messages": ask, "tools": tools, "stream": False}
        whole = (await http.post("/api/chat", json=body)).json()
        assert whole["message"]["tool_calls"] == calls and whole["message"]["content"] == ""
        body = {"model": "qwen3:8b", "messages": USER, "think": True}
        parts = lines(await http.post("/api/chat", json=body))
        assert parts[0]["message"]["thinking"] and parts[0]["message"]["content"] == ""
        assert "".join(p["message"]["content"] for p in parts) == "Hello from the fake node!"
        refused = await http.post("/api/chat", json={"model": MODEL, "messages": USER, "think": True})
        assert refused.status_code == 400 and "does not support thinking" in refused.json()["error"]
        refused = await http.post("/api/chat", json={"model": "qwen3:8b", "messages": USER, "tools": tools})
        assert refused.status_code == 400 and "does not support tools" in refused.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/chat", b"", 400, "missing request body"),
        ("/api/chat", b"{not json", 400, "invalid character 'n' looking for beginning of object key string"),
        ("/api/chat", b'{"model": "x"', 400, "unexpected EOF"),
        ("/api/chat", b"[1]", 400, "json: cannot unmarshal array into Go value of type api.ChatRequest"),
        ("/api/chat", b'{"messages": [{"content": 5}]}', 400, "ChatRequest.messages.content of type string"),
        ("/api/chat", b'{"model": "m", "stream": "yes"}', 400, "ChatRequest.stream of type bool"),
        ("/api/chat", b'{"model": "m", "think": "max"}', 400, 'invalid think value: "max"'),
        ("/api/chat", b'{"model": "m", "keep_alive": "soon"}', 400, 'time: invalid duration "soon"'),
        ("/api/chat", b'{"messages": []}', 400, "model is required"),
        ("/api/chat", b'{"model": "ghost:1b", "messages": []}', 404, "model 'ghost:1b' not found"),
        ("/api/generate", b'{"model": "ghost:1b"}', 404, "model 'ghost:1b' not found"),
        ("/api/generate", b'{"model": "m", "prompt": ["x"]}', 400, "GenerateRequest.prompt of type string"),
    ],
)
async def test_bad_requests_like_ollama(
    nursery: trio.Nursery, path: str, body: bytes, status: int, error: str
) -> None:
    fake, http = await start(nursery)
    async with http:
        resp = await http.post(path, content=body)
        assert resp.status_code == status and resp.headers["content-type"].startswith("application/json")
        assert error in resp.json()["error"]
        assert fake.requests[-1][0] == path and fake.active_streams == 0


async def test_loading_and_unloading(nursery: trio.Nursery) -> None:
    fake, http = await start(nursery)
    async with http:
        loaded = await http.post("/api/generate", json={"model": "qwen3:8b"})
        assert loaded.json()["done_reason"] == "load" and fake.loaded == [MODEL, "qwen3:8b"]
        ps = (await http.get("/api/ps")).json()["models"]
        assert sorted(p["name"] for p in ps) == [MODEL, "qwen3:8b"]
        gone = await http.post("/api/generate", json={"model": "qwen3:8b", "keep_alive": 0})
        assert gone.json()["done_reason"] == "unload" and fake.loaded == [MODEL]
        cold = {"model": "qwen3:8b", "messages": USER, "stream": False}
        first, second = [(await http.post("/api/chat", json=cold)).json() for _ in range(2)]
        assert first["load_duration"] > second["load_duration"]
        await http.post("/api/chat", json=cold | {"keep_alive": "0s"})
        assert fake.loaded == [MODEL]


async def test_embed(nursery: trio.Nursery) -> None:
    _, http = await start(nursery)
    async with http:
        out = (await http.post("/api/embed", json={"model": MODEL, "input": ["a", "b"]})).json()
        assert len(out["embeddings"]) == 2 and out["embeddings"][0] != out["embeddings"][1]
        assert out["model"] == MODEL and out["prompt_eval_count"] == 2
        legacy = (await http.post("/api/embeddings", json={"model": MODEL, "prompt": "a"})).json()
        assert legacy == {"embedding": out["embeddings"][0]}


async def test_fail_next_pops_one_per_request(nursery: trio.Nursery) -> None:
    fake, http = await start(nursery)
    fake.fail_next += [(500, "boom"), (503, "server busy")]
    async with http:
        body = {"model": MODEL, "messages": USER}
        first, second, third = [await http.post("/api/chat", json=body) for _ in range(3)]
        assert (first.status_code, first.json()) == (500, {"error": "boom"})
        assert (second.status_code, second.json()) == (503, {"error": "server busy"})
        assert third.status_code == 200 and lines(third)[-1]["done"]
        assert len(fake.requests) == 3


async def test_fail_after_chunks_cuts_the_connection(nursery: trio.Nursery) -> None:
    fake, http = await start(nursery)
    fake.fail_after_chunks = 2
    async with http:
        got: list[bytes] = []
        with pytest.raises(httpx.RemoteProtocolError):
            async with http.stream("POST", "/api/chat", json={"model": MODEL, "messages": USER}) as resp:
                assert resp.status_code == 200
                async for line in resp.aiter_lines():
                    got.append(line.encode())
        assert len(got) == 2 and not any(json.loads(x)["done"] for x in got)
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/api/chat", json={"model": MODEL, "messages": USER})  # read to the end
        resp = await http.post("/api/chat", json={"model": MODEL, "messages": USER, "stream": False})
        assert resp.status_code == 500 and resp.content == b""  # died before its only byte
        assert fake.completed_streams == 0 and fake.active_streams == 0


async def wait_for(predicate: Any) -> None:
    with trio.fail_after(10):  # hang guard only
        while not predicate():  # noqa: ASYNC110 (the state lives in another server's task)
            await trio.sleep(0.005)


async def test_client_disconnect_is_counted(nursery: trio.Nursery) -> None:
    fake = FakeOllama([MODEL], chunk_delay=0.01, num_chunks=10_000)
    _, http = await start(nursery, fake)
    async with http:
        async with http.stream("POST", "/api/chat", json={"model": MODEL, "messages": USER}) as resp:
            async for _ in resp.aiter_lines():
                break
            assert fake.active_streams == 1
        await wait_for(lambda: fake.cancelled_streams == 1)
        assert fake.active_streams == 0 and fake.completed_streams == 0


async def test_stall_after_chunks_then_disconnect(nursery: trio.Nursery) -> None:
    fake, http = await start(nursery)
    fake.stall_after_chunks = 3
    async with http:
        async with http.stream("POST", "/api/chat", json={"model": MODEL, "messages": USER}) as resp:
            chunks = resp.aiter_lines()
            assert [json.loads(await anext(chunks))["done"] for _ in range(3)] == [False] * 3
            with trio.move_on_after(0.05) as silence:  # can only err towards passing: the fake is stalled
                await anext(chunks)
            assert silence.cancelled_caught and fake.active_streams == 1
        await wait_for(lambda: fake.cancelled_streams == 1)
        assert fake.active_streams == 0


async def test_official_client_against_the_fake(nursery: trio.Nursery) -> None:
    fake, http = await start(nursery)
    await http.aclose()
    c = ollama.Client(host=fake.url, trust_env=False)
    whole = await trio.to_thread.run_sync(lambda: c.chat(model=MODEL, messages=USER, stream=False))
    assert whole.message.content == fake.reply and whole.done_reason == "stop"
    parts = await trio.to_thread.run_sync(lambda: list(c.generate(model=MODEL, prompt="x", stream=True)))
    assert "".join(p.response or "" for p in parts) == fake.reply and parts[-1].context
    listed = await trio.to_thread.run_sync(c.list)
    assert {m.model for m in listed.models} == {MODEL, "qwen3:8b"}
    running = await trio.to_thread.run_sync(c.ps)
    assert running.models[0].context_length == 4096
    shown = await trio.to_thread.run_sync(lambda: c.show(MODEL))
    assert shown.modelinfo and shown.capabilities == ["completion", "tools"]
    c._client.close()


def test_pure_helpers() -> None:
    assert rfc3339(1_700_000_000_123_400_000) == "2023-11-14T22:13:20.1234Z"
    assert rfc3339(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert keep_alive_seconds(None) == 300 and keep_alive_seconds("1h30m") == 5400
    assert keep_alive_seconds(-1) == float("inf") and keep_alive_seconds("0") == 0
    assert keep_alive_seconds(10) == 10 and keep_alive_seconds("1.5s") == 1.5


async def test_bench_load_generator_reads_both_framings(nursery: trio.Nursery) -> None:
    from bench.loadgen import Conn, run_round

    fake, http = await start(nursery)
    await http.aclose()
    host, port = fake.url.removeprefix("http://").split(":")
    conns = [Conn(host, int(port)) for _ in range(2)]
    for stream in (False, True):
        body = json.dumps({"model": MODEL, "messages": USER, "stream": stream}).encode()
        result = await trio.to_thread.run_sync(run_round, conns, "/api/chat", body, 6, b'"done":true')
        assert not result.errors and len(result.samples) == 6
        assert all(s.status == 200 and 0 < s.ttfb <= s.ttlb for s in result.samples)
    for c in conns:
        c.close()
    assert fake.completed_streams == 12

"""OpenAI-compatible nodes (`herd node --backend openai`): the agent's probe, the router's translation both
ways (Ollama and OpenAI callers), honest counts and durations, capabilities, and the unhappy paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from fake_ollama import FakeModel, FakeOllama
from fake_openai import FakeOpenAI
from harness import Fleet, ollama_client, openai_client, start_fleet

from herd.backends.openai_request import data_url, translate
from herd.backends.openai_response import to_ollama
from herd.backends.upstream import UpstreamError
from herd.fleet.heartbeat import HostStats
from herd.node.collect import build_heartbeat
from herd.node.openai_probe import OpenAIProber

GIB = 1 << 30


async def join(fleet: Fleet, node_id: str, fake: FakeOpenAI) -> dict[str, Any]:
    """What `herd node --backend openai` would report for `fake`, posted to the router."""
    probe = await OpenAIProber(fleet.http, fake.url).probe()
    assert probe.up, probe.error
    hb = build_heartbeat(
        node_id=node_id,
        backend_url=fake.url,
        probe=probe,
        host=HostStats(cpu_count=8, mem_total=64 * GIB, mem_available=48 * GIB, disk_free=500 * GIB),
        interval=5.0,
        parallel=int(probe.extra.get("parallel", 0)),
        backend="openai",
    )
    resp = await fleet.http.post(fleet.url + "/heartbeat", json=hb.to_json())
    assert resp.status_code == 200, resp.text
    return hb.to_json()


async def openai_fleet(
    nursery: trio.Nursery,
    tmp_path: Path,
    fakes: dict[str, FakeOpenAI],
    ollama_nodes: dict[str, FakeOllama] | None = None,
) -> Fleet:
    fleet = await start_fleet(nursery, tmp_path, ollama_nodes or {})
    for node_id, fake in fakes.items():
        await nursery.start(fake.run)
        await join(fleet, node_id, fake)
    return fleet


# --- the agent's probe ---------------------------------------------------------------------------------


async def test_probe_reports_llama_cpp_models_slots_context_and_embedding(nursery: trio.Nursery) -> None:
    fake = FakeOpenAI("smollm2", embeddings=True, vision=True, slots=3, n_ctx=2048)
    await nursery.start(fake.run)
    async with httpx.AsyncClient(trust_env=False) as client:
        probe = await OpenAIProber(client, fake.url).probe()
    assert probe.up and probe.version == "b9999-fake"
    (entry,) = probe.models
    assert entry["name"] == "smollm2" and entry["size"] == 98304000
    assert entry["capabilities"] == ["completion", "embedding", "vision"]
    assert entry["details"]["parameter_size"] == "135M" and entry["context_length"] == 2048
    (running,) = probe.loaded
    assert running["name"] == "smollm2" and running["context_length"] == 2048
    assert probe.extra["parallel"] == 3


async def test_probe_vllm_like_server_and_a_loading_server(nursery: trio.Nursery) -> None:
    fake = FakeOpenAI("Qwen/Qwen2.5-7B", llama_cpp=False, n_ctx=32768)
    await nursery.start(fake.run)
    async with httpx.AsyncClient(trust_env=False) as client:
        prober = OpenAIProber(client, fake.url)
        probe = await prober.probe()
        assert probe.up and probe.extra["parallel"] == 0
        assert probe.models[0]["capabilities"] == ["completion"]
        assert probe.models[0]["context_length"] == 32768
        fake.healthy = False
        down = await prober.probe()
    assert not down.up and "503" in (down.error or "") and "Loading model" in (down.error or "")


async def test_busy_server_never_delays_the_probe_and_is_asked_again(
    nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    fake = FakeOpenAI("smollm2", embeddings=True)
    fake.embed_delay = 30.0
    await nursery.start(fake.run)
    async with httpx.AsyncClient(trust_env=False) as client:
        prober = OpenAIProber(client, fake.url)
        start = trio.current_time()
        busy = await prober.probe()
        assert trio.current_time() - start < 2.0  # the one-second budget, not the 30 s queue
        assert busy.up and busy.models[0]["capabilities"] == ["completion"]  # not known yet
        fake.embed_delay = 0.0
        later = await prober.probe()
    assert later.models[0]["capabilities"] == ["completion", "embedding"]


# --- pure translation ------------------------------------------------------------------------------------


def test_chat_request_translation_images_tools_options_format() -> None:
    png = "iVBORw0KGgoAAAANSUhEUg"
    body = {
        "model": "smollm2:latest",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "what is this?", "images": [png]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}],
            },
            {"role": "tool", "content": "42", "tool_name": "f"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "options": {"temperature": 0.2, "num_predict": 64, "top_k": 5, "num_ctx": 8192, "stop": ["\n"]},
        "format": {"type": "object"},
        "stream": True,
    }
    t = translate("/api/chat", body, "smollm2")
    assert t.path == "/v1/chat/completions" and t.kind == "chat" and t.stream
    out = t.body
    assert out["model"] == "smollm2" and out["stream_options"] == {"include_usage": True}
    assert (
        out["temperature"] == 0.2 and out["max_tokens"] == 64 and out["top_k"] == 5 and out["stop"] == ["\n"]
    )
    assert "num_ctx" not in out and out["tools"] == body["tools"]
    assert out["response_format"]["type"] == "json_schema"
    user = out["messages"][1]["content"]
    assert user[0] == {"type": "text", "text": "what is this?"}
    assert user[1]["image_url"]["url"] == f"data:image/png;base64,{png}"
    call = out["messages"][2]["tool_calls"][0]
    assert call["function"] == {"name": "f", "arguments": '{"a": 1}'} and call["type"] == "function"
    assert out["messages"][3] == {"role": "tool", "content": "42", "tool_call_id": call["id"]}
    assert data_url("/9j/4AAQ") == "data:image/jpeg;base64,/9j/4AAQ"
    quiet = translate("/api/chat", {"model": "m", "messages": [], "think": False}, "m").body
    assert quiet["chat_template_kwargs"] == {"enable_thinking": False}


def test_generate_embed_and_raw_translation() -> None:
    gen = translate("/api/generate", {"model": "m", "prompt": "hi", "system": "s", "stream": False}, "m")
    assert gen.path == "/v1/chat/completions" and not gen.stream and gen.kind == "generate"
    assert gen.body["messages"] == [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    raw = translate("/api/generate", {"model": "m", "prompt": "<s>hi", "raw": True}, "m")
    assert raw.path == "/v1/completions" and raw.body["prompt"] == "<s>hi"
    emb = translate("/api/embed", {"model": "m", "input": ["a", "b"], "dimensions": 8}, "m")
    assert emb.body == {"model": "m", "input": ["a", "b"], "encoding_format": "float", "dimensions": 8}
    legacy = translate("/api/embeddings", {"model": "m", "prompt": "a"}, "m")
    assert legacy.kind == "embeddings" and legacy.body["input"] == ["a"]


class _Chunks:
    """A body arriving in 7-byte pieces (split mid-line on purpose), like a socket: no generator to finalize."""

    def __init__(self, body: bytes) -> None:
        self.parts = [body[i : i + 7] for i in range(0, len(body), 7)]

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        if not self.parts:
            raise StopAsyncIteration
        return self.parts.pop(0)


async def _collect(body: bytes, **kw: Any) -> list[dict[str, Any]]:
    gen = to_ollama(_Chunks(body), **kw)
    return [json.loads(line) async for line in gen]


async def test_sse_to_ollama_counts_and_durations_from_usage_and_timings() -> None:
    events = [
        {"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]},
        {"choices": [{"delta": {"reasoning_content": "hmm"}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": "Hi"}, "finish_reason": None}]},
        {
            "choices": [{"delta": {}, "finish_reason": "length"}],
            "timings": {"prompt_ms": 3.5, "predicted_ms": 8.0},
        },
        {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2}},
    ]
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    out = await _collect(body, kind="chat", model="m:latest", stream=True)
    assert [c["message"].get("thinking", "") + c["message"]["content"] for c in out[:-1]] == ["hmm", "Hi"]
    final = out[-1]
    assert final["done"] is True and final["done_reason"] == "length"
    assert final["prompt_eval_count"] == 11 and final["eval_count"] == 2
    assert final["prompt_eval_duration"] == 3_500_000 and final["eval_duration"] == 8_000_000
    assert "load_duration" not in final  # not known: not invented


async def test_cut_sse_stream_has_no_final_chunk_and_error_event_becomes_error_line() -> None:
    cut = b'data: {"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
    out = await _collect(cut, kind="chat", model="m", stream=True)
    assert len(out) == 1 and out[0]["done"] is False
    err = cut + b'data: {"error":{"message":"context full","code":500}}\n\n'
    out = await _collect(err, kind="generate", model="m", stream=True)
    assert out[0]["response"] == "Hi" and out[1] == {"error": "context full"}


# --- through the router ------------------------------------------------------------------------------------


async def test_ollama_client_chat_on_openai_node_stream_and_not(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake = FakeOpenAI("smollm2")
    fleet = await openai_fleet(nursery, tmp_path, {"llama": fake})
    msgs = [{"role": "user", "content": "hi"}]
    with ollama_client(fleet.url) as c:
        parts = await trio.to_thread.run_sync(lambda: list(c.chat("smollm2", messages=msgs, stream=True)))
        assert "".join(p.message.content or "" for p in parts) == fake.reply
        final = parts[-1]
        usage = fake.usage(fake.requests[-1][1])
        assert final.done and final.done_reason == "stop"
        assert (
            final.prompt_eval_count == usage["prompt_tokens"]
            and final.eval_count == usage["completion_tokens"]
        )
        assert final.eval_duration == 40_250_000 and final.prompt_eval_duration == 12_500_000
        path, sent = fake.requests[-1]
        assert path == "/v1/chat/completions" and sent["model"] == "smollm2" and sent["stream"] is True
        whole = await trio.to_thread.run_sync(lambda: c.chat("smollm2", messages=msgs, stream=False))
        assert whole.message.content == fake.reply and whole.eval_count == usage["completion_tokens"]
        gen = await trio.to_thread.run_sync(lambda: c.generate("smollm2", prompt="hello", stream=False))
        assert gen.response == fake.reply and gen.done_reason == "stop"


async def test_openai_client_on_openai_node_usage_is_the_backends(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake = FakeOpenAI("smollm2")
    fleet = await openai_fleet(nursery, tmp_path, {"llama": fake})
    msgs: Any = [{"role": "user", "content": "hi"}]
    with openai_client(fleet.url) as c:
        chunks = await trio.to_thread.run_sync(
            lambda: list(
                c.chat.completions.create(
                    model="smollm2", messages=msgs, stream=True, stream_options={"include_usage": True}
                )
            )
        )
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == fake.reply
        usage = chunks[-1].usage
        expected = fake.usage(fake.requests[-1][1])
        assert usage is not None and usage.prompt_tokens == expected["prompt_tokens"]
        assert usage.completion_tokens == expected["completion_tokens"]
        done = await trio.to_thread.run_sync(
            lambda: c.chat.completions.create(model="smollm2", messages=msgs)
        )
        assert done.choices[0].message.content == fake.reply and done.choices[0].finish_reason == "stop"


async def test_tool_calls_from_openai_node_reach_both_dialects(nursery: trio.Nursery, tmp_path: Path) -> None:
    fake = FakeOpenAI("smollm2", tool_call={"name": "get_weather", "arguments": {"city": "Paris"}})
    fleet = await openai_fleet(nursery, tmp_path, {"llama": fake})
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    msgs: Any = [{"role": "user", "content": "w?"}]
    with ollama_client(fleet.url) as oc:
        parts = await trio.to_thread.run_sync(
            lambda: list(oc.chat("smollm2", messages=msgs, tools=tools, stream=True))
        )
    calls = [call for p in parts for call in (p.message.tool_calls or [])]
    assert [(call.function.name, dict(call.function.arguments)) for call in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    with openai_client(fleet.url) as c:
        done = await trio.to_thread.run_sync(
            lambda: c.chat.completions.create(model="smollm2", messages=msgs, tools=tools)
        )
    (call,) = done.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert done.choices[0].finish_reason == "tool_calls"


async def test_embeddings_go_only_to_the_node_that_embeds(nursery: trio.Nursery, tmp_path: Path) -> None:
    chat_only, embedder = FakeOpenAI("smollm2"), FakeOpenAI("smollm2", embeddings=True)
    fleet = await openai_fleet(nursery, tmp_path, {"chat": chat_only, "embed": embedder})
    with openai_client(fleet.url) as c:
        for _ in range(3):
            res = await trio.to_thread.run_sync(
                lambda: c.embeddings.create(model="smollm2", input=["a", "bbb"])
            )
            assert [d.embedding[0] for d in res.data] == [1.0, 3.0]
    served = [r for p, r in chat_only.requests if p == "/v1/embeddings" and r["input"] != "ping"]
    assert not served  # only the agent's one-word capability probe ever reached it
    resp = await fleet.http.post(fleet.url + "/api/embed", json={"model": "smollm2", "input": "abcd"})
    assert resp.status_code == 200 and resp.headers["x-herd-node"] == "embed"
    body = resp.json()
    assert body["embeddings"] == [[4.0, 0.5, -0.25]] and body["prompt_eval_count"] == 2
    legacy = await fleet.http.post(fleet.url + "/api/embeddings", json={"model": "smollm2", "prompt": "ab"})
    assert legacy.json() == {"embedding": [2.0, 0.5, -0.25]}


async def test_embeddings_on_a_fleet_that_cannot_embed_is_a_clear_400(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fleet = await openai_fleet(nursery, tmp_path, {"chat": FakeOpenAI("smollm2")})
    resp = await fleet.http.post(fleet.url + "/api/embed", json={"model": "smollm2", "input": "a"})
    assert resp.status_code == 400 and "embedding" in resp.json()["error"]


async def test_mixed_fleet_and_show_and_listing(nursery: trio.Nursery, tmp_path: Path) -> None:
    fake = FakeOpenAI("smollm2", n_ctx=2048)
    olla = FakeOllama([FakeModel("llama3.2:3b")], loaded=["llama3.2:3b"])
    fleet = await openai_fleet(nursery, tmp_path, {"llama": fake}, {"olla": olla})
    tags = (await fleet.http.get(fleet.url + "/api/tags")).json()["models"]
    assert {m["name"] for m in tags} == {"smollm2", "llama3.2:3b"}
    models = (await fleet.http.get(fleet.url + "/v1/models")).json()["data"]
    assert {m["id"] for m in models} >= {"llama3.2:3b"}
    a = await fleet.http.post(
        fleet.url + "/api/chat", json={"model": "llama3.2:3b", "messages": [], "stream": False}
    )
    b = await fleet.http.post(
        fleet.url + "/api/chat",
        json={"model": "smollm2", "messages": [{"role": "user", "content": "x"}], "stream": False},
    )
    assert a.headers["x-herd-node"] == "olla" and b.headers["x-herd-node"] == "llama"
    shown = await fleet.http.post(fleet.url + "/api/show", json={"model": "smollm2"})
    assert shown.status_code == 200 and shown.json()["model_info"]["general.context_length"] == 2048
    pull = await fleet.http.post(fleet.url + "/api/pull", json={"model": "qwen3", "node": "llama"})
    assert pull.status_code == 400 and "OpenAI-compatible" in pull.json()["error"]


async def test_openai_node_failing_mid_stream_is_reported_not_cut(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake = FakeOpenAI("smollm2", reply="one two three four")
    fake.fail_after_chunks = 2
    fleet = await openai_fleet(nursery, tmp_path, {"llama": fake})
    msgs = [{"role": "user", "content": "x"}]
    resp = await fleet.http.post(fleet.url + "/api/chat", json={"model": "smollm2", "messages": msgs})
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert [ln["message"]["content"] for ln in lines[:-1]] == ["one", " two"]
    assert "failed mid-stream" in lines[-1]["error"]
    sse = await fleet.http.post(
        fleet.url + "/v1/chat/completions", json={"model": "smollm2", "messages": msgs, "stream": True}
    )
    assert "failed mid-stream" in sse.text and "data: [DONE]" not in sse.text


async def test_agent_beats_for_an_openai_backend(nursery: trio.Nursery, tmp_path: Path) -> None:
    """The real agent loop with `backend="openai"`: what it sends is what the router needs."""
    from herd.node.agent import Agent

    fake = FakeOpenAI("smollm2", slots=3, embeddings=True)
    await nursery.start(fake.run)
    sent: list[Any] = []

    class Sink:
        async def ready(self) -> None:
            return None

        async def send(self, hb: Any) -> None:
            sent.append(hb)

        async def answers(self) -> bool:
            return True

        def describe(self) -> str:
            return "test sink"

    async def host(_: Path) -> HostStats:
        return HostStats(cpu_count=2, mem_total=GIB, mem_available=GIB)

    async with httpx.AsyncClient(trust_env=False) as client:
        agent = Agent(
            node_id="llama",
            backend_url=fake.url,
            data_dir=tmp_path,
            client=client,
            sink=Sink(),
            host_probe=host,
            backend="openai",
        )
        hb = await agent.beat()
        fake.healthy = False
        down = await agent.beat()
    assert hb.backend == "openai" and hb.backend_up and hb.parallel == 3
    assert hb.backend_version == "b9999-fake"
    assert [m["name"] for m in hb.models] == ["smollm2"] and [m["name"] for m in hb.loaded] == ["smollm2"]
    assert hb.models[0]["capabilities"] == ["completion", "embedding"]
    assert not down.backend_up and down.models == ()


async def test_openai_caller_on_openai_node_gets_the_nodes_own_bytes(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The native path: the caller's body goes to the node as is (model renamed), the node's SSE comes back
    unchanged; herd only asks for usage (for its record) and hides that chunk from a caller that did not."""
    fake = FakeOpenAI("smollm2")
    fleet = await openai_fleet(nursery, tmp_path, {"llama": fake})
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "logprobs": True,
        "tool_choice": "none",
        "metadata": {"tags": ["app-a"]},
    }
    recorded = trio.Event()
    fleet.router.services.recorder.sinks.append(lambda _: recorded.set())
    resp = await fleet.http.post(fleet.url + "/v1/chat/completions", json=body)
    events = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["id"] == "chatcmpl-fake" and c["system_fingerprint"] == "b9999-fake" for c in chunks)
    assert not [c for c in chunks if "usage" in c]  # herd asked for it; the caller did not
    assert "timings" in chunks[-1]  # llama.cpp's own field survives
    sent = fake.requests[-1][1]
    assert sent["logprobs"] is True and sent["tool_choice"] == "none" and "metadata" not in sent
    assert sent["stream_options"] == {"include_usage": True}
    with trio.fail_after(5):
        await recorded.wait()  # finished when the response's exit stack closes, just after the last byte
    rec = fleet.router.services.recorder.recent[-1]
    usage = fake.usage(sent)
    assert (rec.prompt_tokens, rec.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert rec.tokens_per_s is not None and rec.tags == ("app-a",)
    body["stream"] = False
    whole = (await fleet.http.post(fleet.url + "/v1/chat/completions", json=body)).json()
    assert whole["id"] == "chatcmpl-fake" and whole["timings"]["predicted_n"] == usage["completion_tokens"]
    assert whole["choices"][0]["message"]["content"] == fake.reply


async def test_images_go_only_to_an_openai_node_with_vision(nursery: trio.Nursery, tmp_path: Path) -> None:
    blind, seeing = FakeOpenAI("gemma3"), FakeOpenAI("gemma3", vision=True)
    fleet = await openai_fleet(nursery, tmp_path, {"blind": blind, "seeing": seeing})
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
    msgs = [{"role": "user", "content": "what is this?", "images": [png]}]
    for _ in range(3):
        resp = await fleet.http.post(
            fleet.url + "/api/chat", json={"model": "gemma3", "messages": msgs, "stream": False}
        )
        assert resp.status_code == 200 and resp.headers["x-herd-node"] == "seeing"
    parts = seeing.requests[-1][1]["messages"][0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + png}}
    assert not [r for p, r in blind.requests if p == "/v1/chat/completions"]
    only_blind = await openai_fleet(nursery, tmp_path / "b", {"blind": FakeOpenAI("gemma3")})
    refused = await only_blind.http.post(
        only_blind.url + "/v1/chat/completions",
        json={
            "model": "gemma3",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + png}}],
                }
            ],
        },
    )
    assert refused.status_code == 400 and "vision" in refused.json()["error"]["message"]


async def test_a_node_answering_garbage_is_an_upstream_protocol_error() -> None:
    """An UpstreamError before the first byte is what the proxy retries on another node (not a 500)."""
    with pytest.raises(UpstreamError, match="not JSON"):
        await _collect(b"<html>502 Bad Gateway</html>", kind="chat", model="m", stream=False)
    with pytest.raises(UpstreamError, match="not JSON"):
        await _collect(b"oops", kind="embed", model="m", stream=False)


async def test_ollama_load_idiom_wakes_an_openai_node(nursery: trio.Nursery, tmp_path: Path) -> None:
    fake = FakeOpenAI("smollm2")
    fleet = await openai_fleet(nursery, tmp_path, {"llama": fake})
    resp = await fleet.http.post(fleet.url + "/api/generate", json={"model": "smollm2", "prompt": ""})
    assert resp.status_code == 200
    (line,) = [json.loads(x) for x in resp.text.splitlines()]
    assert line["done"] is True and line["done_reason"] == "load" and line["model"] == "smollm2"
    path, sent = fake.requests[-1]
    assert path == "/v1/completions" and sent["max_tokens"] == 1 and sent["model"] == "smollm2"

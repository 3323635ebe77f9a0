"""The OpenAI dialect end to end: official `openai` client → real router → fake Ollama nodes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import openai
import pytest
import trio
from fake_ollama import FakeModel, FakeOllama
from harness import openai_client as client
from harness import start_fleet

MODEL = "llama3.2:3b"


async def test_chat_completion_non_stream(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c:
        resp = await trio.to_thread.run_sync(
            lambda: c.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=50
            )
        )
        assert resp.object == "chat.completion" and resp.id.startswith("chatcmpl-")
        assert resp.choices[0].message.content == fleet.nodes["n1"].reply
        assert resp.choices[0].finish_reason == "stop"
        assert (
            resp.usage
            and resp.usage.completion_tokens > 0
            and resp.usage.total_tokens == (resp.usage.prompt_tokens + resp.usage.completion_tokens)
        )
        sent = fleet.nodes["n1"].requests[-1]
        assert sent[0] == "/api/chat" and sent[1]["options"]["num_predict"] == 50


async def test_chat_completion_stream_with_usage(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c:

        def run() -> list:
            stream = c.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            return list(stream)

        chunks = await trio.to_thread.run_sync(run)
        assert len({ch.id for ch in chunks}) == 1 and len({ch.created for ch in chunks}) == 1
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == fleet.nodes["n1"].reply
        assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
        assert chunks[-1].usage and chunks[-1].usage.completion_tokens > 0


async def test_raw_sse_framing(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    resp = await fleet.http.post(
        fleet.url + "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["x-herd-node"] == "n1"
    events = [e for e in resp.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


async def test_tools_and_images_are_converted(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c:
        png = base64.b64encode(b"\x89PNG fake").decode()
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        resp = await trio.to_thread.run_sync(
            lambda: c.chat.completions.create(
                model=MODEL,
                tools=tools,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is the weather"},
                            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                        ],
                    },
                ],
            )
        )
        call = resp.choices[0].message.tool_calls[0]
        assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
            "location": "Paris"
        }
        assert resp.choices[0].finish_reason == "tool_calls"
        sent = fleet.nodes["n1"].requests[-1][1]
        assert (
            sent["messages"][0]["images"] == [png] and sent["tools"][0]["function"]["name"] == "get_weather"
        )


async def test_models_list_and_retrieve(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"n1": FakeOllama([FakeModel(MODEL), FakeModel("qwen3:8b")])}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    with client(fleet.url) as c:
        listed = await trio.to_thread.run_sync(c.models.list)
        assert sorted(m.id for m in listed.data) == [MODEL, "qwen3:8b"]
        one = await trio.to_thread.run_sync(lambda: c.models.retrieve("qwen3:8b"))
        assert one.id == "qwen3:8b" and one.object == "model"
        with pytest.raises(openai.NotFoundError):
            await trio.to_thread.run_sync(lambda: c.models.retrieve("nope"))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{oops", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "m", "messages": "x"}', "messages"),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
            "temperature",
        ),
    ],
)
async def test_bad_input_is_openai_shaped_400(
    nursery: trio.Nursery, tmp_path: Path, body: bytes, param: str | None
) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    resp = await fleet.http.post(fleet.url + "/v1/chat/completions", content=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


async def test_unknown_model_is_openai_404(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c:
        with pytest.raises(openai.NotFoundError) as info:
            await trio.to_thread.run_sync(
                lambda: c.chat.completions.create(model="ghost", messages=[{"role": "user", "content": "x"}])
            )
        assert info.value.body["code"] == "model_not_found"


async def test_failure_after_first_byte_is_an_sse_error(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    fleet.nodes["n1"].fail_after_chunks = 2
    with client(fleet.url) as c:

        def run() -> None:
            for _ in c.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True
            ):
                pass

        with pytest.raises(openai.APIError):
            await trio.to_thread.run_sync(run)

"""`/v1/responses` and `/v1/completions` end to end: the official `openai` client → real router → fake nodes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import openai
import pytest
import trio
from fake_ollama import FakeModel, FakeOllama
from fake_openai import FakeOpenAI
from harness import openai_client as client
from harness import start_fleet
from test_openai_backend import openai_fleet

MODEL = "llama3.2:3b"
TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    }
]


async def test_responses_create_non_stream(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c:
        resp = await trio.to_thread.run_sync(
            lambda: c.responses.create(
                model=MODEL, input="hi", instructions="be brief", max_output_tokens=50, temperature=0.2
            )
        )
    assert resp.id.startswith("resp_") and resp.object == "response" and resp.status == "completed"
    assert resp.output_text == fleet.nodes["n1"].reply
    assert resp.output[0].type == "message" and resp.output[0].content[0].type == "output_text"
    assert resp.usage and resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    path, sent = fleet.nodes["n1"].requests[-1]
    assert path == "/api/chat"
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert sent["options"] == {"num_predict": 50, "temperature": 0.2}


async def test_responses_stream_event_sequence(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c:

        def run() -> tuple[list, object]:
            with c.responses.stream(model=MODEL, input="hi") as stream:
                events = list(stream)
                return events, stream.get_final_response()

        events, final = await trio.to_thread.run_sync(run)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == fleet.nodes["n1"].reply == final.output_text  # type: ignore[attr-defined]
    assert final.usage.output_tokens > 0  # type: ignore[attr-defined]


async def test_responses_tools_across_two_turns(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c:
        first = await trio.to_thread.run_sync(
            lambda: c.responses.create(model=MODEL, input="what is the weather in Paris?", tools=TOOLS)
        )
        call = first.output[0]
        assert call.type == "function_call" and call.name == "get_weather"
        assert json.loads(call.arguments) == {"location": "Paris"} and call.call_id
        sent = fleet.nodes["n1"].requests[-1][1]
        assert sent["tools"][0] == {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": TOOLS[0]["parameters"],
            },
        }
        second = await trio.to_thread.run_sync(
            lambda: c.responses.create(
                model=MODEL,
                tools=TOOLS,
                input=[
                    {"role": "user", "content": "what is the weather in Paris?"},
                    call.model_dump(exclude_none=True),  # type: ignore[list-item]
                    {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
                ],
            )
        )
    assert second.output_text == fleet.nodes["n1"].reply
    messages = fleet.nodes["n1"].requests[-1][1]["messages"]
    assert messages[1]["role"] == "assistant"
    assert messages[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"location": "Paris"},
    }
    assert messages[2] == {"role": "tool", "content": "sunny, 21 C", "tool_name": "get_weather"}


async def test_responses_stream_tool_call_and_image(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    png = base64.b64encode(b"\x89PNG fake").decode()
    content = [
        {"type": "input_text", "text": "weather here?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{png}", "detail": "auto"},
    ]
    with client(fleet.url) as c:

        def run() -> object:
            with c.responses.stream(
                model=MODEL, input=[{"role": "user", "content": content}], tools=TOOLS
            ) as stream:
                kinds = [e.type for e in stream]
                assert "response.function_call_arguments.done" in kinds
                return stream.get_final_response()

        final = await trio.to_thread.run_sync(run)
    assert final.output[0].type == "function_call"  # type: ignore[attr-defined]
    assert fleet.nodes["n1"].requests[-1][1]["messages"][0]["images"] == [png]


async def test_responses_reasoning_and_json_schema(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"n1": FakeOllama([FakeModel("qwen3:8b", capabilities=("completion", "thinking"))])}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    with client(fleet.url) as c:
        resp = await trio.to_thread.run_sync(
            lambda: c.responses.create(
                model="qwen3:8b",
                input="think",
                reasoning={"effort": "low"},
                text={"format": {"type": "json_schema", "name": "x", "schema": schema}},
            )
        )
    sent = fleet.nodes["n1"].requests[-1][1]
    assert sent["think"] == "low" and sent["format"] == schema
    assert [item.type for item in resp.output] == ["reasoning", "message"]
    assert resp.output[0].summary[0].text  # type: ignore[union-attr]


async def test_responses_length_is_incomplete(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c:
        resp = await trio.to_thread.run_sync(
            lambda: c.responses.create(model=MODEL, input="hi", max_output_tokens=2)
        )
    assert resp.status == "incomplete" and resp.incomplete_details
    assert resp.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL, "input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"model": MODEL}, "input"),
        ({"model": MODEL, "input": [{"type": "web_search_call"}]}, "input[0].type"),
        ({"model": MODEL, "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        (
            {
                "model": MODEL,
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "image_url": "http://x/a.png"}]}
                ],
            },
            "input[0].content[0].image_url",
        ),
    ],
)
async def test_responses_bad_input_is_a_clear_400(
    nursery: trio.Nursery, tmp_path: Path, body: dict, param: str
) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c, pytest.raises(openai.BadRequestError) as info:
        await trio.to_thread.run_sync(lambda: c.responses.create(**body))
    assert info.value.body["param"] == param  # type: ignore[index]
    assert fleet.nodes["n1"].requests == []


async def test_responses_failure_mid_stream_fails_the_response(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    fleet.nodes["n1"].fail_after_chunks = 2
    with client(fleet.url) as c:

        def run() -> list:
            return [e.type for e in c.responses.create(model=MODEL, input="hi", stream=True)]

        kinds = await trio.to_thread.run_sync(run)
    assert kinds[-2:] == ["error", "response.failed"] and "response.completed" not in kinds


async def test_completions_create(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c:
        resp = await trio.to_thread.run_sync(
            lambda: c.completions.create(model=MODEL, prompt="once upon", max_tokens=30, stop=["\n"])
        )
        assert resp.object == "text_completion" and resp.id.startswith("cmpl-")
        assert resp.choices[0].text == fleet.nodes["n1"].reply and resp.choices[0].finish_reason == "stop"
        assert resp.usage and resp.usage.completion_tokens > 0
        path, sent = fleet.nodes["n1"].requests[-1]
        assert path == "/api/generate" and sent["prompt"] == "once upon"
        assert sent["options"] == {"num_predict": 30, "stop": ["\n"]}

        def stream() -> list:
            return list(
                c.completions.create(
                    model=MODEL, prompt=["x"], stream=True, stream_options={"include_usage": True}
                )
            )

        chunks = await trio.to_thread.run_sync(stream)
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == fleet.nodes["n1"].reply
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize(
    ("extra", "param"), [({"echo": True}, "echo"), ({"n": 2}, "n"), ({"prompt": ["a", "b"]}, "prompt")]
)
async def test_completions_unsupported_is_a_clear_400(
    nursery: trio.Nursery, tmp_path: Path, extra: dict, param: str
) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c, pytest.raises(openai.BadRequestError) as info:
        await trio.to_thread.run_sync(
            lambda: c.completions.create(**{"model": MODEL, "prompt": "x", **extra})
        )
    assert info.value.body["param"] == param  # type: ignore[index]


async def test_openai_node_completions_native_and_responses_translated(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake = FakeOpenAI("smollm2")
    fleet = await openai_fleet(nursery, tmp_path, {"llama": fake})
    with client(fleet.url) as c:
        done = await trio.to_thread.run_sync(
            lambda: c.completions.create(model="smollm2", prompt="hello", max_tokens=20)
        )
        path, sent = fake.requests[-1]
        assert path == "/v1/completions" and sent["prompt"] == "hello" and sent["max_tokens"] == 20
        assert done.choices[0].text == fake.reply
        chunks = await trio.to_thread.run_sync(
            lambda: list(c.completions.create(model="smollm2", prompt="hello", stream=True))
        )
        assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == fake.reply
        resp = await trio.to_thread.run_sync(lambda: c.responses.create(model="smollm2", input="hi"))
        assert resp.output_text == fake.reply and fake.requests[-1][0] == "/v1/chat/completions"


async def test_responses_stream_cut_by_the_limit_still_completes(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    with client(fleet.url) as c:

        def run() -> object:
            with c.responses.stream(model=MODEL, input="hi", max_output_tokens=2) as stream:
                return stream.get_final_response()

        final = await trio.to_thread.run_sync(run)
    assert final.status == "incomplete" and final.incomplete_details.reason == "max_output_tokens"  # type: ignore[attr-defined]
    assert final.output_text == " ".join(fleet.nodes["n1"].reply.split(" ")[:2])  # type: ignore[attr-defined]


async def test_completions_suffix_where_the_model_supports_it(nursery: trio.Nursery, tmp_path: Path) -> None:
    coder = FakeModel("qwen2.5-coder:7b", capabilities=("completion", "insert"))
    fleet = await start_fleet(nursery, tmp_path, {"n1": FakeOllama([FakeModel(MODEL), coder])})
    with client(fleet.url) as c:
        done = await trio.to_thread.run_sync(
            lambda: c.completions.create(model="qwen2.5-coder:7b", prompt="def f(", suffix="return x")
        )
        assert done.choices[0].text and fleet.nodes["n1"].requests[-1][1]["suffix"] == "return x"
        with pytest.raises(openai.BadRequestError, match="does not support insert"):
            await trio.to_thread.run_sync(
                lambda: c.completions.create(model=MODEL, prompt="def f(", suffix="return x")
            )

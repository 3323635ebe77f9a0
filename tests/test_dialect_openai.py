"""Unit tests for the OpenAI dialect codec: request conversion/validation, SSE encoding, accumulation, models.

Encoder and accumulator output is also fed to the official `openai` client (over an in-memory httpx
transport, no sockets) to prove it parses what we send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from herd.dialects import openai as codec
from herd.errors import BadRequest

USER = {"role": "user", "content": "hi"}
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
PNG = "data:image/png;base64,iVBORw0KGgo="


def convert(**body: Any) -> tuple[dict[str, Any], codec.ChatOptions]:
    return codec.chat_request_to_ollama({"model": "m", "messages": [USER], **body})


# ---------------------------------------------------------------- request conversion


def test_minimal_request() -> None:
    out, opts = convert()
    assert out == {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    assert opts == codec.ChatOptions(model="m", stream=False, include_usage=False)


def test_chat_options_is_frozen() -> None:
    _, opts = convert()
    with pytest.raises(AttributeError):
        opts.model = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("body", "stream", "include_usage"),
    [
        ({"stream": True}, True, False),
        ({"stream": False}, False, False),
        ({"stream": None}, False, False),
        ({"stream": True, "stream_options": {"include_usage": True}}, True, True),
        ({"stream": True, "stream_options": {"include_usage": False}}, True, False),
        ({"stream": True, "stream_options": None}, True, False),
    ],
)
def test_stream_flags(body: dict[str, Any], stream: bool, include_usage: bool) -> None:
    out, opts = convert(**body)
    assert out["stream"] is True  # upstream always streams
    assert (opts.stream, opts.include_usage) == (stream, include_usage)


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ({"max_tokens": 50}, "options", {"num_predict": 50}),
        ({"max_completion_tokens": 7}, "options", {"num_predict": 7}),
        ({"max_tokens": 50, "max_completion_tokens": 7}, "options", {"num_predict": 7}),
        (
            {"temperature": 0, "top_p": 0.9, "seed": 42, "frequency_penalty": 0.5, "presence_penalty": -1},
            "options",
            {"temperature": 0, "top_p": 0.9, "seed": 42, "frequency_penalty": 0.5, "presence_penalty": -1},
        ),
        ({"stop": "END"}, "options", {"stop": ["END"]}),
        ({"stop": ["a", "b"]}, "options", {"stop": ["a", "b"]}),
        ({"stop": []}, "options", None),
        ({"stop": None, "temperature": None}, "options", None),
        ({"response_format": {"type": "json_object"}}, "format", "json"),
        ({"response_format": {"type": "text"}}, "format", None),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "object"}},
                }
            },
            "format",
            {"type": "object"},
        ),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "format", "json"),
        ({"reasoning_effort": "low"}, "think", "low"),
        ({"reasoning_effort": "medium"}, "think", "medium"),
        ({"reasoning_effort": "high"}, "think", "high"),
        ({"reasoning_effort": "none"}, "think", False),
        ({"reasoning_effort": "minimal"}, "think", "low"),
        ({"reasoning": {"effort": "high"}}, "think", "high"),
        ({"reasoning": {}}, "think", None),
        ({"tools": []}, "tools", None),
        ({"user": "u1", "logit_bias": {"1": 2}, "n": 1, "store": False, "metadata": {}}, "options", None),
    ],
)
def test_request_field_conversion(body: dict[str, Any], key: str, expected: Any) -> None:
    out, _ = convert(**body)
    assert out.get(key) == expected


def test_tools_pass_through_and_tool_choice_none_drops_them() -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object"}, "strict": True},
        }
    ]
    out, _ = convert(tools=tools, tool_choice="auto")
    assert out["tools"] == tools
    out, _ = convert(tools=tools, tool_choice="none")
    assert "tools" not in out


def test_message_conversion() -> None:
    messages = [
        {"role": "developer", "content": "rules"},
        {"role": "system", "content": [{"type": "text", "text": "more rules"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                {"type": "text", "text": "this?"},
                {"type": "image_url", "image_url": "data:image/jpeg;base64,/9j/4AAQ"},
            ],
            "name": "alice",
        },
        {
            "role": "assistant",
            "content": None,
            "reasoning": "thinking it over",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "noargs", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_2", "content": "done"},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "found"}]},
        {"role": "tool", "tool_call_id": "unknown", "content": "orphan"},
        {"role": "tool", "name": "explicit", "tool_call_id": "call_1", "content": "named"},
        {"role": "assistant", "content": "ok"},
    ]
    out, _ = codec.chat_request_to_ollama({"model": "m", "messages": messages})
    assert out["messages"] == [
        {"role": "system", "content": "rules"},
        {"role": "system", "content": "more rules"},
        {"role": "user", "content": "what is\nthis?", "images": ["iVBORw0KGgo=", "/9j/4AAQ"]},
        {
            "role": "assistant",
            "content": "",
            "thinking": "thinking it over",
            "tool_calls": [
                {"function": {"name": "lookup", "arguments": {"q": "x"}}, "id": "call_1"},
                {"function": {"name": "noargs", "arguments": {}}, "id": "call_2"},
            ],
        },
        {"role": "tool", "content": "done", "tool_name": "noargs"},
        {"role": "tool", "content": "found", "tool_name": "lookup"},
        {"role": "tool", "content": "orphan"},
        {"role": "tool", "content": "named", "tool_name": "explicit"},
        {"role": "assistant", "content": "ok"},
    ]


def test_tool_call_id_lookup_prefers_latest_earlier_call() -> None:
    call = {"id": "dup", "type": "function", "function": {"name": "first", "arguments": "{}"}}
    later = {"id": "dup", "type": "function", "function": {"name": "second", "arguments": "{}"}}
    messages = [
        USER,
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "dup", "content": "a"},
        {"role": "assistant", "tool_calls": [later]},
        {"role": "tool", "tool_call_id": "dup", "content": "b"},
    ]
    out, _ = codec.chat_request_to_ollama({"model": "m", "messages": messages})
    assert [m.get("tool_name") for m in out["messages"]] == [None, None, "first", None, "second"]


def msg(**fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", **fields}]}


def call(function: Any, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "assistant", "tool_calls": [{"function": function, **extra}]}]}


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({"model": None}, "model", "'model' is required"),
        ({"model": 1}, "model", "'model' must be a string, got number"),
        ({"messages": None}, "messages", "'messages' is required"),
        ({"messages": []}, "messages", "at least one message"),
        ({"messages": "hi"}, "messages", "must be an array, got string"),
        ({"messages": [USER, 3]}, "messages[1]", "'messages[1]' must be an object, got number"),
        ({"messages": [{"content": "x"}]}, "messages[0].role", "'messages[0].role' is required"),
        ({"messages": [{"role": "robot"}]}, "messages[0].role", "must be one of system, developer, user"),
        (msg(content=5), "messages[0].content", "must be a string, an array of content parts or null"),
        (msg(content={"type": "text"}), "messages[0].content", "got object"),
        (msg(content=["x"]), "messages[0].content[0]", "must be an object, got string"),
        (msg(content=[{"type": "text"}]), "messages[0].content[0].text", "must be a string, got null"),
        (
            msg(content=[{"type": "audio"}]),
            "messages[0].content[0].type",
            'unsupported content part type "audio"',
        ),
        (msg(content=[{"text": "x"}]), "messages[0].content[0].type", "unsupported content part type null"),
        (
            msg(content=[{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]),
            "messages[0].content[0].image_url.url",
            "only base64 data URLs are supported for images",
        ),
        (
            msg(content=[{"type": "image_url", "image_url": "http://x/y.png"}]),
            "messages[0].content[0].image_url",
            "only base64 data URLs are supported for images",
        ),
        (
            msg(content=[{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]),
            "messages[0].content[0].image_url.url",
            "must be base64-encoded",
        ),
        (
            msg(content=[{"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]),
            "messages[0].content[0].image_url.url",
            "carries no data",
        ),
        (msg(content=[{"type": "image_url"}]), "messages[0].content[0].image_url", "an object with a 'url'"),
        (
            msg(content=[{"type": "image_url", "image_url": {}}]),
            "messages[0].content[0].image_url.url",
            "null",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": {}}]},
            "messages[0].tool_calls",
            "must be an array",
        ),
        ({"messages": [{"role": "assistant", "tool_calls": [1]}]}, "messages[0].tool_calls[0]", "an object"),
        (call({"name": "f"}, type="custom"), "messages[0].tool_calls[0].type", "only function tool calls"),
        (call(None), "messages[0].tool_calls[0].function", "must be an object, got null"),
        (call({"arguments": "{}"}), "messages[0].tool_calls[0].function.name", "is required"),
        (
            call({"name": "f", "arguments": "{oops"}),
            "messages[0].tool_calls[0].function.arguments",
            "not valid JSON",
        ),
        (
            call({"name": "f", "arguments": "[1]"}),
            "messages[0].tool_calls[0].function.arguments",
            "a JSON object",
        ),
        (
            call({"name": "f", "arguments": 3}),
            "messages[0].tool_calls[0].function.arguments",
            "a JSON string",
        ),
        (call({"name": "f"}, id=5), "messages[0].tool_calls[0].id", "must be a string"),
        ({"messages": [{"role": "tool", "tool_call_id": 1}]}, "messages[0].tool_call_id", "must be a string"),
        ({"messages": [{"role": "assistant", "reasoning": 1}]}, "messages[0].reasoning", "must be a string"),
        ({"stream": "true"}, "stream", "'stream' must be a boolean, got string"),
        ({"stream_options": []}, "stream_options", "must be an object"),
        ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage", "must be a boolean"),
        ({"n": 2}, "n", "n > 1 is not supported"),
        ({"n": 0}, "n", "at least 1"),
        ({"n": 1.0}, "n", "must be an integer"),
        ({"max_tokens": "10"}, "max_tokens", "'max_tokens' must be an integer, got string"),
        ({"max_tokens": 1.5}, "max_tokens", "must be an integer"),
        ({"max_tokens": True}, "max_tokens", "got boolean"),
        ({"max_tokens": 0}, "max_tokens", "at least 1"),
        ({"max_completion_tokens": -1}, "max_completion_tokens", "at least 1"),
        ({"temperature": "hot"}, "temperature", "'temperature' must be a number, got string"),
        ({"temperature": True}, "temperature", "got boolean"),
        ({"top_p": [1]}, "top_p", "must be a number"),
        ({"frequency_penalty": {}}, "frequency_penalty", "must be a number"),
        ({"presence_penalty": False}, "presence_penalty", "got boolean"),
        ({"seed": 1.5}, "seed", "must be an integer"),
        ({"seed": False}, "seed", "got boolean"),
        ({"stop": 1}, "stop", "a string or an array of strings"),
        ({"stop": ["a", 1]}, "stop", "a string or an array of strings"),
        ({"response_format": "json"}, "response_format", "must be an object"),
        ({"response_format": {"type": "yaml"}}, "response_format.type", "must be one of text, json_object"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "must be an object"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": "x"}}},
            "response_format.json_schema.schema",
            "must be an object",
        ),
        ({"reasoning_effort": "extreme"}, "reasoning_effort", "must be one of none, minimal, low"),
        ({"reasoning_effort": 1}, "reasoning_effort", "must be a string"),
        ({"reasoning": {"effort": "lots"}}, "reasoning.effort", "must be one of"),
        ({"tools": {}}, "tools", "must be an array"),
        ({"tools": ["f"]}, "tools[0]", "must be an object"),
        ({"tools": [{"type": "custom", "custom": {}}]}, "tools[0].type", "only function tools"),
        ({"tools": [{"type": "function"}]}, "tools[0].function", "must be an object"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name", "is required"),
    ],
)
def test_request_rejects(body: dict[str, Any], param: str, needle: str) -> None:
    full = {"model": "m", "messages": [USER], **body}
    with pytest.raises(BadRequest) as info:
        codec.chat_request_to_ollama(full)
    assert info.value.param == param
    assert needle in info.value.message
    assert info.value.openai_type == "invalid_request_error"


# ---------------------------------------------------------------- stream encoding

ID, CREATED, MODEL = "chatcmpl-abc", 1_700_000_000, "llama3.2:3b"


def chunk(content: str = "", done: bool = False, **message: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "model": MODEL,
        "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content, **message},
        "done": done,
    }
    return c


def final(
    reason: str = "stop", prompt: int | None = 11, completion: int | None = 5, **message: Any
) -> dict[str, Any]:
    c = chunk(done=True, **message)
    c["done_reason"] = reason
    if prompt is not None:
        c["prompt_eval_count"] = prompt
    if completion is not None:
        c["eval_count"] = completion
    return c


def events(data: bytes) -> list[Any]:
    """Parse SSE bytes back: every event must be exactly `data: <payload>\\n\\n`."""
    assert data.endswith(b"\n\n") or data == b""
    out: list[Any] = []
    for block in data.split(b"\n\n")[:-1]:
        assert block.startswith(b"data: ") and b"\n" not in block
        payload = block[len(b"data: ") :]
        out.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return out


def encode_all(chunks: list[dict[str, Any]], include_usage: bool = False) -> bytes:
    enc = codec.ChatStreamEncoder(MODEL, ID, CREATED, include_usage)
    return b"".join(enc.encode(c) for c in chunks) + enc.finish()


def test_stream_text_events() -> None:
    data = encode_all([chunk("Hel"), chunk(""), chunk("lo"), final()])
    assert b", " not in data and b'": ' not in data  # compact JSON
    evs = events(data)
    assert evs[-1] == "[DONE]"
    chunks = evs[:-1]
    for ev in chunks:
        assert (ev["id"], ev["object"], ev["created"], ev["model"]) == (
            ID,
            "chat.completion.chunk",
            CREATED,
            MODEL,
        )
        assert "usage" not in ev
    deltas = [(ev["choices"][0]["delta"], ev["choices"][0]["finish_reason"]) for ev in chunks]
    assert deltas == [
        ({"role": "assistant", "content": "Hel"}, None),
        ({"content": "lo"}, None),
        ({}, "stop"),
    ]


def test_stream_first_empty_chunk_announces_role() -> None:
    evs = events(encode_all([chunk(""), chunk("x"), final()]))
    assert [e["choices"][0]["delta"] for e in evs[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "x"},
        {},
    ]


def test_stream_empty_reply_still_well_formed() -> None:
    evs = events(encode_all([final(prompt=None, completion=None)], include_usage=True))
    assert evs[0]["choices"][0] == {
        "index": 0,
        "delta": {"role": "assistant", "content": ""},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert evs[1]["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert evs[2] == "[DONE]"


def test_stream_content_on_final_chunk_is_not_lost() -> None:
    evs = events(encode_all([chunk("a"), final(content="b")]))
    assert [e["choices"][0]["delta"].get("content") for e in evs[:-1]] == ["a", "b", None]
    assert evs[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("stop", "stop"), ("length", "length"), ("load", "stop"), ("unload", "stop"), (None, "stop")],
)
def test_stream_finish_reason(reason: Any, expected: str) -> None:
    evs = events(encode_all([chunk("x"), final(reason=reason)]))
    assert evs[-2]["choices"][0]["finish_reason"] == expected


def test_stream_reasoning_and_usage() -> None:
    data = encode_all(
        [chunk("", thinking="let me"), chunk("", thinking=" think"), chunk("42"), final()], True
    )
    evs = events(data)
    assert [e["choices"][0]["delta"] for e in evs[:3]] == [
        {"role": "assistant", "reasoning": "let me"},
        {"reasoning": " think"},
        {"content": "42"},
    ]
    usage_ev = evs[-2]
    assert (
        usage_ev["choices"] == [] and usage_ev["id"] == ID and usage_ev["object"] == "chat.completion.chunk"
    )
    assert usage_ev["usage"] == {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}


def test_stream_tool_calls() -> None:
    first = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    second = {"id": "call_given", "function": {"index": 0, "name": "get_time", "arguments": {}}}
    evs = events(encode_all([chunk("", tool_calls=[first]), chunk("", tool_calls=[second]), final()]))
    calls = [e["choices"][0]["delta"].get("tool_calls") for e in evs[:-1]]
    a, b = calls[0][0], calls[1][0]
    assert a["index"] == 0 and b["index"] == 1
    assert re.fullmatch(r"call_[0-9a-f]{12}", a["id"]) and b["id"] == "call_given"
    assert a["type"] == b["type"] == "function"
    assert a["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert json.loads(b["function"]["arguments"]) == {}
    assert evs[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_ignores_chunks_after_done() -> None:
    enc = codec.ChatStreamEncoder(MODEL, ID, CREATED, False)
    enc.encode(final())
    assert enc.encode(chunk("late")) == b""


def test_error_event() -> None:
    enc = codec.ChatStreamEncoder(MODEL, ID, CREATED, True)
    enc.encode(chunk("partial"))
    (ev,) = events(enc.error_event("node n1 failed mid-stream"))
    assert ev == {
        "error": {"message": "node n1 failed mid-stream", "type": "server_error", "param": None, "code": None}
    }


# ---------------------------------------------------------------- accumulation


def accumulate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    acc = codec.ChatAccumulator(MODEL, ID, CREATED)
    for c in chunks:
        acc.add(c)
    return acc.result()


def test_accumulator_text() -> None:
    result = accumulate([chunk("Hel"), chunk("lo"), final(reason="length")])
    assert result == {
        "id": ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello"},
                "logprobs": None,
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
    }


def test_accumulator_reasoning_and_tool_calls() -> None:
    tool = {"function": {"name": "f", "arguments": {"a": [1, 2]}}}
    result = accumulate([chunk("", thinking="hm"), chunk("", tool_calls=[tool, tool]), final()])
    choice = result["choices"][0]
    message = choice["message"]
    assert message["content"] is None and message["reasoning"] == "hm"
    assert [c["function"] for c in message["tool_calls"]] == [{"name": "f", "arguments": '{"a":[1,2]}'}] * 2
    assert all("index" not in c and c["type"] == "function" for c in message["tool_calls"])
    assert len({c["id"] for c in message["tool_calls"]}) == 2
    assert choice["finish_reason"] == "tool_calls"


def test_accumulator_empty_reply() -> None:
    result = accumulate([final(prompt=3, completion=0)])
    assert result["choices"][0]["message"] == {"role": "assistant", "content": ""}
    assert result["usage"] == {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}


def test_new_completion_id_unique() -> None:
    ids = {codec.new_completion_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"chatcmpl-[0-9a-f]{24}", i) for i in ids)


# ---------------------------------------------------------------- the official client parses our output


@contextmanager
def official_client(body: bytes, content_type: str, status: int = 200) -> Iterator[openai.OpenAI]:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": content_type}, content=body)

    with httpx2.Client(transport=httpx2.MockTransport(handler)) as http:
        yield openai.OpenAI(base_url="http://herd.test/v1", api_key="k", http_client=http, max_retries=0)


def test_official_client_parses_stream_with_usage() -> None:
    data = encode_all([chunk("", thinking="t"), chunk("Hi"), chunk(" there"), final()], include_usage=True)
    with official_client(data, "text/event-stream") as client:
        stream = client.chat.completions.create(model=MODEL, messages=ASK, stream=True)
        got = list(stream)
    assert [c.id for c in got] == [ID] * len(got)
    text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert text == "Hi there"
    assert got[-2].choices[0].finish_reason == "stop"
    assert got[-1].choices == [] and got[-1].usage is not None
    assert (got[-1].usage.prompt_tokens, got[-1].usage.completion_tokens, got[-1].usage.total_tokens) == (
        11,
        5,
        16,
    )


def test_official_stream_helper_accumulates_tool_calls() -> None:
    tool = {"function": {"name": "lookup", "arguments": {"q": "x"}}}
    data = encode_all(
        [chunk("", tool_calls=[tool]), chunk("", tool_calls=[tool]), final()], include_usage=True
    )
    with (
        official_client(data, "text/event-stream") as client,
        client.chat.completions.stream(model=MODEL, messages=ASK) as stream,
    ):
        for _ in stream:
            pass
        completion = stream.get_final_completion()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls or []]
    assert calls == [("lookup", {"q": "x"})] * 2
    assert completion.usage is not None and completion.usage.total_tokens == 16


def test_official_client_raises_error_event() -> None:
    enc = codec.ChatStreamEncoder(MODEL, ID, CREATED, False)
    data = enc.encode(chunk("par")) + enc.error_event("node died")
    with official_client(data, "text/event-stream") as client:
        stream = client.chat.completions.create(model=MODEL, messages=ASK, stream=True)
        with pytest.raises(openai.APIError, match="node died"):
            list(stream)


def test_official_client_parses_accumulated_completion() -> None:
    tool = {"function": {"name": "f", "arguments": {"x": 1}}}
    result = accumulate([chunk("", thinking="r"), chunk("Sure."), chunk("", tool_calls=[tool]), final()])
    with official_client(json.dumps(result).encode(), "application/json") as client:
        completion = client.chat.completions.create(model=MODEL, messages=ASK)
    assert completion.id == ID and completion.object == "chat.completion"
    message = completion.choices[0].message
    assert message.content == "Sure." and message.role == "assistant"
    assert message.tool_calls and message.tool_calls[0].type == "function"
    assert message.tool_calls[0].function.arguments == '{"x":1}'
    assert completion.usage is not None and completion.usage.completion_tokens == 5


def test_official_client_reads_error_body() -> None:
    body = codec.error_body(
        "model 'x' not found", type="invalid_request_error", param="model", code="model_not_found"
    )
    assert json.loads(body) == {
        "error": {
            "message": "model 'x' not found",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    with (
        official_client(body, "application/json", status=404) as client,
        pytest.raises(openai.NotFoundError) as info,
    ):
        client.chat.completions.create(model="x", messages=ASK)
    assert info.value.code == "model_not_found" and info.value.param == "model"


# ---------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {
                "name": "llama3.2:3b",
                "model": "llama3.2:3b",
                "modified_at": "2024-05-20T10:12:43.123456789-07:00",
            },
            {"id": "llama3.2:3b", "object": "model", "created": 1716225163, "owned_by": "library"},
        ),
        (
            {"name": "jmorgan/tiny:latest", "modified_at": "2024-05-20T17:12:43Z"},
            {"id": "jmorgan/tiny:latest", "object": "model", "created": 1716225163, "owned_by": "jmorgan"},
        ),
        (
            {"name": "hf.co/bartowski/Qwen-GGUF:Q4_K_M", "modified_at": "2024-05-20T17:12:43.5+00:00"},
            {
                "id": "hf.co/bartowski/Qwen-GGUF:Q4_K_M",
                "object": "model",
                "created": 1716225163,
                "owned_by": "bartowski",
            },
        ),
        (
            {"model": "only-model:1b"},
            {"id": "only-model:1b", "object": "model", "created": 0, "owned_by": "library"},
        ),
        (
            {"name": "m", "modified_at": "yesterday"},
            {"id": "m", "object": "model", "created": 0, "owned_by": "library"},
        ),
        (
            {"name": "m", "modified_at": 12345},
            {"id": "m", "object": "model", "created": 0, "owned_by": "library"},
        ),
        (
            {"name": "m", "modified_at": "0001-01-01T00:00:00Z"},
            {"id": "m", "object": "model", "created": 0, "owned_by": "library"},
        ),
    ],
)
def test_model_object(entry: dict[str, Any], expected: dict[str, Any]) -> None:
    assert codec.model_object(entry) == expected


def test_models_list_parsed_by_official_client() -> None:
    listing = codec.models_list(
        [{"name": "a:1b", "modified_at": "2025-01-01T00:00:00Z"}, {"name": "ns/b:2b", "modified_at": ""}]
    )
    assert listing["object"] == "list" and [m["id"] for m in listing["data"]] == ["a:1b", "ns/b:2b"]
    with official_client(json.dumps(listing).encode(), "application/json") as client:
        models = list(client.models.list())
    assert [(m.id, m.owned_by, m.created) for m in models] == [
        ("a:1b", "library", 1735689600),
        ("ns/b:2b", "ns", 0),
    ]
    assert codec.models_list([]) == {"object": "list", "data": []}

"""The Responses API codec without a server: request conversion and the event stream's invariants."""

from __future__ import annotations

import json
from typing import Any

import pytest

from herd.dialects.responses import request_to_ollama
from herd.dialects.responses_stream import ResponsesAccumulator, ResponsesStreamEncoder
from herd.errors import BadRequest


def test_items_become_one_conversation() -> None:
    body, opts = request_to_ollama(
        {
            "model": "m",
            "instructions": "be kind",
            "stream": True,
            "tool_choice": "none",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "input": [
                {"role": "developer", "content": "rules"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hmm"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"x": 1}'},
                {"type": "function_call_output", "call_id": "c1", "output": "42"},
            ],
        }
    )
    assert opts.stream and opts.echo["instructions"] == "be kind" and "tools" not in body
    assert body["messages"] == [
        {"role": "system", "content": "be kind"},
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "a",
            "thinking": "hmm",
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {"x": 1}}}],
        },
        {"role": "tool", "content": "42", "tool_name": "f"},
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": "x", "background": True}, "background"),
        ({"model": "m", "input": "x", "conversation": "c"}, "conversation"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "x", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "msg_gone"}]}, "input[0].id"),
        (
            {
                "model": "m",
                "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{"}],
            },
            "input[0].arguments",
        ),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as info:
        request_to_ollama(body)
    assert info.value.param == param


def chunks() -> list[dict[str, Any]]:
    call = {"function": {"name": "f", "arguments": {"x": 1}}}
    return [
        {"message": {"thinking": "let me"}, "done": False},
        {"message": {"thinking": " think"}, "done": False},
        {"message": {"content": "Hello"}, "done": False},
        {"message": {"content": " there"}, "done": False},
        {"message": {"tool_calls": [call]}, "done": False},
        {
            "message": {"content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 7,
            "eval_count": 5,
        },
    ]


def events_of(data: bytes) -> list[dict[str, Any]]:
    out = []
    for block in data.decode().split("\n\n"):
        if block:
            kind, payload = block.split("\n")
            event = json.loads(payload.removeprefix("data: "))
            assert kind == "event: " + event["type"]
            out.append(event)
    return out


def test_stream_events_are_well_formed_and_agree_with_the_folded_response() -> None:
    _, opts = request_to_ollama({"model": "m", "input": "x"})
    encoder = ResponsesStreamEncoder("m", "resp_1", 100, opts)
    data = b"".join(encoder.encode(c) for c in chunks()) + encoder.finish()
    events = events_of(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    added = [e["item"]["id"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["item"]["id"] for e in events if e["type"] == "response.output_item.done"]
    assert added == done and len(added) == 3  # reasoning, message, function call: each opened and closed
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed" and [i["type"] for i in final["output"]] == [
        "reasoning",
        "message",
        "function_call",
    ]
    assert final["output"][0]["summary"][0]["text"] == "let me think"
    assert final["output"][1]["content"][0]["text"] == "Hello there"
    assert final["output"][2]["arguments"] == '{"x":1}'
    assert final["usage"] == {
        "input_tokens": 7,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 12,
    }
    acc = ResponsesAccumulator("m", "resp_1", 100, opts)
    for c in chunks():
        acc.add(c)
    folded = acc.result()
    assert [i["type"] for i in folded["output"]] == [i["type"] for i in final["output"]]
    assert folded["usage"] == final["usage"] and folded["status"] == "completed"


def test_a_cut_stream_fails_the_response_after_closing_open_items() -> None:
    _, opts = request_to_ollama({"model": "m", "input": "x"})
    encoder = ResponsesStreamEncoder("m", "resp_1", 100, opts)
    events = events_of(encoder.encode(chunks()[2]) + encoder.error_event("node gone"))
    kinds = [e["type"] for e in events]
    assert kinds[-3:] == ["response.output_item.done", "error", "response.failed"]
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "node gone"}


def test_item_references_are_resolved_from_recent_items() -> None:
    from herd.routing.items import RecentItems

    items = RecentItems(limit=2)
    _, opts = request_to_ollama({"model": "m", "input": "x"})
    acc = ResponsesAccumulator("m", "resp_1", 100, opts, items.keep)
    for c in chunks():
        acc.add(c)
    output = acc.result()["output"]
    assert len(items) == 2 and items.recall(output[0]["id"]) is None  # bounded: the oldest went first
    body, _ = request_to_ollama(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "q"},
                {"type": "item_reference", "id": output[1]["id"]},
                {"type": "item_reference", "id": output[2]["id"]},
                {"type": "function_call_output", "call_id": output[2]["call_id"], "output": "1"},
            ],
        },
        items.recall,
    )
    assert body["messages"][1]["content"] == "Hello there"
    assert body["messages"][1]["tool_calls"][0]["function"] == {"name": "f", "arguments": {"x": 1}}
    assert body["messages"][2] == {"role": "tool", "content": "1", "tool_name": "f"}

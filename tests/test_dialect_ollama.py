"""Unit tests for the Ollama dialect codec: body parsing, request validation (with param paths), errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from herd.dialects import ollama
from herd.errors import BadRequest

# ---------------------------------------------------------------- parse_body


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"", "missing request body"),
        (b"  \n\t", "missing request body"),
        (b"{", "invalid JSON body: Expecting property name enclosed in double quotes at line 1 column 2"),
        (b"nope", "invalid JSON body: Expecting value at line 1 column 1"),
        (b'{"a": 1} x', "invalid JSON body: Extra data at line 1 column 10"),
        (b"[1, 2]", "request body must be a JSON object, got array"),
        (b'"text"', "request body must be a JSON object, got string"),
        (b"null", "request body must be a JSON object, got null"),
        (b"3", "request body must be a JSON object, got number"),
        (b'{"x": NaN}', "invalid JSON body: NaN is not valid JSON"),
        (b'{"x": -Infinity}', "invalid JSON body: -Infinity is not valid JSON"),
        (b'{"x": "\xff"}', "invalid JSON body"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON body: nested too deeply"),
    ],
)
def test_parse_body_rejects(raw: bytes, needle: str) -> None:
    with pytest.raises(BadRequest) as info:
        ollama.parse_body(raw)
    assert needle in info.value.message
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"model": "m"}', {"model": "m"}),
        (b' \n{"a": [1, 2.5, true, null]}\n', {"a": [1, 2.5, True, None]}),
        ('{"s": "h\u00e9"}'.encode(), {"s": "h\u00e9"}),
        ('{"model": "str input"}', {"model": "str input"}),
    ],
)
def test_parse_body_accepts(raw: bytes, expected: dict[str, Any]) -> None:
    assert ollama.parse_body(raw) == expected


# ---------------------------------------------------------------- validate_chat

GOOD_CHAT: dict[str, Any] = {
    "model": "llama3.2:3b",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "look", "images": ["aGVsbG8="]},
        {
            "role": "assistant",
            "content": "",
            "thinking": "hmm",
            "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}],
        },
        {"role": "tool", "content": "42", "tool_name": "f"},
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "stream": False,
    "think": "high",
    "raw": False,
    "options": {"temperature": 0.1, "num_ctx": 4096},
    "format": {"type": "object"},
    "keep_alive": "10m",
}


@pytest.mark.parametrize(
    "body",
    [
        GOOD_CHAT,
        {"model": "m"},
        {"model": "m", "messages": []},
        {"model": "m", "messages": None, "stream": None, "options": None, "format": None},
        {"model": "m", "think": True},
        {"model": "m", "think": False},
        {"model": "m", "think": "low"},
        {"model": "m", "format": "json"},
        {"model": "m", "keep_alive": 0},
        {"model": "m", "keep_alive": -1},
        {"model": "m", "keep_alive": 3.5},
        {"model": "m", "unknown_field": {"anything": 1}},
        {"model": "m", "messages": [{"role": "user"}]},
    ],
)
def test_validate_chat_accepts(body: dict[str, Any]) -> None:
    ollama.validate_chat(body)


@pytest.mark.parametrize(
    ("patch", "param", "needle"),
    [
        ({"model": None}, "model", "'model' is required"),
        ({"model": ""}, "model", "'model' is required"),
        ({"model": "   "}, "model", "must not be blank"),
        ({"model": 3}, "model", "'model' must be a string, got number"),
        ({"messages": {"role": "user"}}, "messages", "'messages' must be an array, got object"),
        ({"messages": ["hi"]}, "messages[0]", "'messages[0]' must be an object, got string"),
        ({"messages": [{"content": "x"}]}, "messages[0].role", "'messages[0].role' is required"),
        ({"messages": [{"role": 1}]}, "messages[0].role", "must be a string, got number"),
        (
            {"messages": [{"role": "developer"}]},
            "messages[0].role",
            "must be one of system, user, assistant, tool",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": 5}]},
            "messages[1].content",
            "'messages[1].content' must be a string, got number",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
            "messages[0].content",
            "must be a string, got array",
        ),
        ({"messages": [{"role": "user", "images": "abc"}]}, "messages[0].images", "array of base64 strings"),
        ({"messages": [{"role": "user", "images": [1]}]}, "messages[0].images", "array of base64 strings"),
        (
            {"messages": [{"role": "assistant", "tool_calls": {}}]},
            "messages[0].tool_calls",
            "must be an array",
        ),
        ({"messages": [{"role": "assistant", "tool_calls": [1]}]}, "messages[0].tool_calls[0]", "an object"),
        ({"messages": [{"role": "assistant", "thinking": 1}]}, "messages[0].thinking", "must be a string"),
        ({"messages": [{"role": "tool", "tool_name": 1}]}, "messages[0].tool_name", "must be a string"),
        ({"stream": "yes"}, "stream", "'stream' must be a boolean, got string"),
        ({"stream": 1}, "stream", "'stream' must be a boolean, got number"),
        ({"raw": "no"}, "raw", "'raw' must be a boolean"),
        ({"think": "max"}, "think", 'a boolean or one of "high", "medium", "low"'),
        ({"think": 1}, "think", "got number"),
        ({"options": []}, "options", "'options' must be an object, got array"),
        ({"format": 1}, "format", "'format' must be a string"),
        ({"format": ["json"]}, "format", "got array"),
        ({"tools": {}}, "tools", "'tools' must be an array, got object"),
        ({"keep_alive": True}, "keep_alive", "got boolean"),
        ({"keep_alive": []}, "keep_alive", "duration string"),
    ],
)
def test_validate_chat_rejects(patch: dict[str, Any], param: str, needle: str) -> None:
    body = {"model": "m", **patch}
    with pytest.raises(BadRequest) as info:
        ollama.validate_chat(body)
    assert info.value.param == param
    assert needle in info.value.message


# ---------------------------------------------------------------- validate_generate


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m"},
        {"model": "m", "prompt": ""},
        {
            "model": "m",
            "prompt": "why",
            "suffix": "end",
            "system": "s",
            "template": "{{ .Prompt }}",
            "images": ["aGk="],
            "stream": True,
            "raw": True,
            "think": "medium",
            "options": {"seed": 1},
            "format": "json",
            "keep_alive": "1h",
            "context": [1, 2, 3],
        },
        {"model": "m", "prompt": "", "keep_alive": 0},
    ],
)
def test_validate_generate_accepts(body: dict[str, Any]) -> None:
    ollama.validate_generate(body)


@pytest.mark.parametrize(
    ("patch", "param", "needle"),
    [
        ({"model": None}, "model", "required"),
        ({"model": ["m"]}, "model", "got array"),
        ({"prompt": 1}, "prompt", "'prompt' must be a string, got number"),
        ({"suffix": {}}, "suffix", "'suffix' must be a string"),
        ({"system": False}, "system", "'system' must be a string, got boolean"),
        ({"template": []}, "template", "'template' must be a string"),
        ({"images": "x"}, "images", "array of base64 strings"),
        ({"images": [None]}, "images", "array of base64 strings"),
        ({"stream": "false"}, "stream", "must be a boolean"),
        ({"options": "x"}, "options", "must be an object"),
        ({"format": 2}, "format", "'format' must be"),
        ({"keep_alive": {}}, "keep_alive", "'keep_alive' must be"),
        ({"context": [1, "a"]}, "context", "array of integers"),
        ({"think": "extreme"}, "think", "'think' must be"),
    ],
)
def test_validate_generate_rejects(patch: dict[str, Any], param: str, needle: str) -> None:
    with pytest.raises(BadRequest) as info:
        ollama.validate_generate({"model": "m", **patch})
    assert info.value.param == param
    assert needle in info.value.message


# ---------------------------------------------------------------- validate_show / wants_stream


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": "llama3"}, "llama3"),
        ({"name": "legacy:7b"}, "legacy:7b"),
        ({"model": "new", "name": "old"}, "new"),
        ({"model": None, "name": "old"}, "old"),
    ],
)
def test_validate_show(body: dict[str, Any], expected: str) -> None:
    assert ollama.validate_show(body) == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "model"),
        ({"model": ""}, "model"),
        ({"model": 5}, "model"),
        ({"name": 5}, "name"),
        ({"name": ""}, "name"),
    ],
)
def test_validate_show_rejects(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as info:
        ollama.validate_show(body)
    assert info.value.param == param


@pytest.mark.parametrize(
    ("body", "expected"),
    [({}, True), ({"stream": None}, True), ({"stream": True}, True), ({"stream": False}, False)],
)
def test_wants_stream(body: dict[str, Any], expected: bool) -> None:
    assert ollama.wants_stream(body) is expected


# ---------------------------------------------------------------- errors


def test_error_body_and_line() -> None:
    body = ollama.error_body('model "x" not found')
    assert json.loads(body) == {"error": 'model "x" not found'}
    line = ollama.error_line("node died: caf\u00e9")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"error": "node died: caf\u00e9"}


def test_error_line_survives_lone_surrogate() -> None:
    line = ollama.error_line("bad \ud800 text")
    assert line.endswith(b"\n")
    assert json.loads(line)["error"].startswith("bad ")

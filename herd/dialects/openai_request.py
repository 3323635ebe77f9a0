"""OpenAI `/v1/chat/completions` request → Ollama `/api/chat` body (validation and conversion, pure).

Sits at the front of the OpenAI request flow: `herd.web.openai_api` parses the body, calls
`chat_request_to_ollama`, forwards the returned Ollama body (always `stream: true`; a non-stream OpenAI reply
is assembled from the chunks by `herd.dialects.openai_stream.ChatAccumulator`) and keeps the `ChatOptions`
to shape the reply. Every problem is a `BadRequest` whose `param` names the offending field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from herd.dialects.checks import (
    as_object,
    fail,
    is_bool,
    is_dict,
    is_int,
    is_list,
    is_number,
    is_str,
    optional,
    required_model,
    required_str,
    wrong_type,
)

ROLES = ("system", "developer", "user", "assistant", "tool")
# OpenAI effort levels → Ollama's `think` (Ollama knows high/medium/low; "none" turns thinking off).
EFFORT_TO_THINK: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
SAMPLING_KEYS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """What the reply path needs to know about the caller's request."""

    model: str
    stream: bool
    include_usage: bool


def _image_data(url: str, path: str) -> str:
    """The base64 payload of a `data:<type>;base64,<data>` URL (Ollama takes bare base64 in `images`)."""
    if url[:5].lower() != "data:":
        fail(path, "only base64 data URLs are supported for images")
    head, comma, data = url.partition(",")
    if not comma or not head.lower().endswith(";base64"):
        fail(path, "image data URLs must be base64-encoded (data:<media type>;base64,<data>)")
    if not data:
        fail(path, "image data URL carries no data")
    return data


def _content(value: Any, path: str) -> tuple[str, list[str]]:
    """Message content (string, null or parts) → (text with parts joined by newlines, base64 images)."""
    if value is None:
        return "", []
    if isinstance(value, str):
        return value, []
    if not isinstance(value, list):
        wrong_type(path, "a string, an array of content parts or null", value)
    texts: list[str] = []
    images: list[str] = []
    for j, item in enumerate(value):
        ppath = f"{path}[{j}]"
        part = as_object(item, ppath)
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                wrong_type(f"{ppath}.text", "a string", text)
            texts.append(text)
        elif kind == "image_url":
            image = part.get("image_url")
            if isinstance(image, dict):
                url = image.get("url")
                if not isinstance(url, str):
                    wrong_type(f"{ppath}.image_url.url", "a string", url)
                images.append(_image_data(url, f"{ppath}.image_url.url"))
            elif isinstance(image, str):
                images.append(_image_data(image, f"{ppath}.image_url"))
            else:
                wrong_type(f"{ppath}.image_url", "an object with a 'url'", image)
        else:
            fail(
                f"{ppath}.type",
                f"unsupported content part type {json.dumps(kind)} (use 'text' or 'image_url')",
            )
    return "\n".join(texts), images


def _arguments(value: Any, path: str) -> dict[str, Any]:
    """OpenAI tool-call arguments (a JSON string) → the JSON object Ollama expects."""
    if isinstance(value, dict):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if not isinstance(value, str):
        wrong_type(path, "a JSON string", value)
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        fail(path, f"tool call arguments are not valid JSON: {exc}")
    if not isinstance(parsed, dict):
        fail(path, "tool call arguments must encode a JSON object")
    return parsed


def _tool_calls(value: Any, path: str, names: dict[str, str]) -> list[dict[str, Any]]:
    """Assistant `tool_calls` → Ollama's; records id → function name for later tool results."""
    if value is None:
        return []
    if not isinstance(value, list):
        wrong_type(path, "an array", value)
    calls: list[dict[str, Any]] = []
    for j, item in enumerate(value):
        cpath = f"{path}[{j}]"
        call = as_object(item, cpath)
        kind = optional(call, "type", is_str, "a string", cpath)
        if kind not in (None, "function"):
            fail(f"{cpath}.type", "only function tool calls are supported")
        function = as_object(call.get("function"), f"{cpath}.function")
        name = required_str(function, "name", f"{cpath}.function")
        converted: dict[str, Any] = {
            "function": {
                "name": name,
                "arguments": _arguments(function.get("arguments"), f"{cpath}.function.arguments"),
            }
        }
        call_id = optional(call, "id", is_str, "a string", cpath)
        if call_id:
            converted["id"] = call_id
            names[call_id] = name
        calls.append(converted)
    return calls


def _message(item: Any, path: str, names: dict[str, str]) -> dict[str, Any]:
    m = as_object(item, path)
    role = m.get("role")
    if not isinstance(role, str) or role not in ROLES:
        if role is None:
            fail(f"{path}.role", f"'{path}.role' is required")
        fail(f"{path}.role", f"'{path}.role' must be one of {', '.join(ROLES)}, got {json.dumps(role)}")
    text, images = _content(m.get("content"), f"{path}.content")
    out: dict[str, Any] = {"role": "system" if role == "developer" else role, "content": text}
    if images:
        out["images"] = images
    thinking = optional(m, "reasoning", is_str, "a string", path)  # Ollama's compat field for thinking
    if thinking:
        out["thinking"] = thinking
    if role == "assistant":
        calls = _tool_calls(m.get("tool_calls"), f"{path}.tool_calls", names)
        if calls:
            out["tool_calls"] = calls
    elif role == "tool":
        name = optional(m, "name", is_str, "a string", path)
        call_id = optional(m, "tool_call_id", is_str, "a string", path)
        tool_name = name or (names.get(call_id) if call_id else None)
        if tool_name:
            out["tool_name"] = tool_name
    return out


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("messages")
    if raw is None:
        fail("messages", "'messages' is required")
    if not isinstance(raw, list):
        wrong_type("messages", "an array", raw)
    if not raw:
        fail("messages", "'messages' must contain at least one message")
    names: dict[str, str] = {}
    return [_message(item, f"messages[{i}]", names) for i, item in enumerate(raw)]


def _tools(body: dict[str, Any]) -> list[Any] | None:
    """OpenAI and Ollama share the function-tool shape, so tools pass through after a shape check."""
    tools = optional(body, "tools", is_list, "an array")
    for j, item in enumerate(tools or []):
        tool = as_object(item, f"tools[{j}]")
        if tool.get("type", "function") != "function":
            fail(f"tools[{j}].type", "only function tools are supported")
        required_str(as_object(tool.get("function"), f"tools[{j}].function"), "name", f"tools[{j}].function")
    if not tools or body.get("tool_choice") == "none":
        return None
    return tools


def _format(body: dict[str, Any]) -> str | dict[str, Any] | None:
    fmt = optional(body, "response_format", is_dict, "an object")
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = as_object(fmt.get("json_schema"), "response_format.json_schema")
        schema = optional(spec, "schema", is_dict, "an object", "response_format.json_schema")
        return schema if schema is not None else "json"
    fail("response_format.type", "'response_format.type' must be one of text, json_object, json_schema")


def _think(body: dict[str, Any]) -> bool | str | None:
    param = "reasoning_effort"
    effort = optional(body, param, is_str, "a string")
    if effort is None:
        reasoning = optional(body, "reasoning", is_dict, "an object")
        if reasoning is None:
            return None
        param = "reasoning.effort"
        effort = optional(reasoning, "effort", is_str, "a string", "reasoning")
        if effort is None:
            return None
    if effort not in EFFORT_TO_THINK:
        fail(param, f"'{param}' must be one of {', '.join(EFFORT_TO_THINK)}, got {json.dumps(effort)}")
    return EFFORT_TO_THINK[effort]


def _options(body: dict[str, Any]) -> dict[str, Any]:
    return sampling_options(
        body, ("max_tokens", "max_completion_tokens")
    )  # the newer name wins when both are given


def sampling_options(body: dict[str, Any], limits: tuple[str, ...]) -> dict[str, Any]:
    """Ollama `options` from an OpenAI body's token limit (`limits`, later names win), sampling keys, seed and
    stop (chat completions and legacy completions alike)."""
    options: dict[str, Any] = {}
    for key in limits:
        limit = optional(body, key, is_int, "an integer")
        if limit is not None:
            if limit < 1:
                fail(key, f"'{key}' must be at least 1")
            options["num_predict"] = limit
    for key in SAMPLING_KEYS:
        value = optional(body, key, is_number, "a number")
        if value is not None:
            options[key] = value
    seed = optional(body, "seed", is_int, "an integer")
    if seed is not None:
        options["seed"] = seed
    stop = body.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if stop:
            options["stop"] = stop
    elif stop is not None:
        wrong_type("stop", "a string or an array of strings", stop)
    return options


def chat_request_to_ollama(body: dict[str, Any]) -> tuple[dict[str, Any], ChatOptions]:
    """Validate an OpenAI chat request and build the Ollama `/api/chat` body (always streamed upstream)."""
    model = required_model(body, "model")
    stream = optional(body, "stream", is_bool, "a boolean") is True
    stream_options = optional(body, "stream_options", is_dict, "an object") or {}
    include_usage = optional(stream_options, "include_usage", is_bool, "a boolean", "stream_options") is True
    n = optional(body, "n", is_int, "an integer")
    if n is not None and n > 1:
        fail("n", "n > 1 is not supported")
    if n is not None and n < 1:
        fail("n", "'n' must be at least 1")
    out: dict[str, Any] = {"model": model, "messages": _messages(body), "stream": True}
    tools = _tools(body)
    if tools is not None:
        out["tools"] = tools
    fmt = _format(body)
    if fmt is not None:
        out["format"] = fmt
    think = _think(body)
    if think is not None:
        out["think"] = think
    options = _options(body)
    if options:
        out["options"] = options
    return out, ChatOptions(model=model, stream=stream, include_usage=include_usage)

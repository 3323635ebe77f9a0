"""OpenAI Responses API request (`POST /v1/responses`) → Ollama `/api/chat` body (validation and conversion, pure).

Sits at the front of the Responses flow: `herd.inference.responses` parses the body, calls `request_to_ollama`,
routes the returned Ollama chat body like any chat (always streamed upstream) and keeps the `ResponsesOptions`
to shape the reply (`herd.dialects.responses_stream`). Wire format handled:

- `input`: a string (one user message) or a list of items: `message` (`role` user/system/developer/assistant,
  `content` a string or parts `input_text` / `output_text` / `refusal` / `input_image` with a base64 data URL),
  `function_call` (`call_id`, `name`, `arguments` JSON string) → an assistant tool call,
  `function_call_output` (`call_id`, `output`) → a `tool` message, `reasoning` (its summary text) → the next
  assistant message's `thinking`. Items without `type` but with `role` are messages (the shorthand).
- `instructions` → a leading system message; `tools`: flat function tools `{type, name, description,
  parameters}` → Ollama's nested `{type, function: {...}}`; `tool_choice: "none"` drops them.
- `max_output_tokens` → `num_predict`; `temperature`, `top_p` → options; `text.format` (`json_schema` → the
  schema, `json_object` → "json"); `reasoning.effort` → `think`.
- herd stores no responses: `previous_response_id`, `conversation` and `background` are clear 400s. It does
  keep its recent output items (`herd.routing.items`), so an `item_reference` to one (the Vercel AI SDK sends
  these for earlier assistant turns by default) is replaced by the item itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
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
    required_str,
    wrong_type,
)
from herd.dialects.openai_request import EFFORT_TO_THINK

MESSAGE_ROLES = ("user", "system", "developer", "assistant")
Recall = Callable[[str], "dict[str, Any] | None"]  # an output item id -> the item, if herd still has it


@dataclass(frozen=True, slots=True)
class ResponsesOptions:
    """What the reply needs from the request: the model, streaming, and the fields a response echoes."""

    model: str
    stream: bool
    echo: dict[str, Any] = field(default_factory=dict)


def _image(part: dict[str, Any], path: str) -> str:
    url = part.get("image_url")
    if url is None:
        if part.get("file_id") is not None:
            fail(
                f"{path}.file_id", "herd stores no files: send the image as a base64 data URL in 'image_url'"
            )
        fail(f"{path}.image_url", f"'{path}.image_url' is required")
    if not isinstance(url, str):
        wrong_type(f"{path}.image_url", "a string", url)
    head, comma, data = url.partition(",")
    if head[:5].lower() != "data:" or not comma or not head.lower().endswith(";base64") or not data:
        fail(f"{path}.image_url", "only base64 data URLs (data:<media type>;base64,<data>) are supported")
    return data


def _content(value: Any, path: str) -> tuple[str, list[str]]:
    """Message content (a string or parts) → (text, base64 images)."""
    if isinstance(value, str):
        return value, []
    if value is None:
        return "", []
    if not isinstance(value, list):
        wrong_type(path, "a string or an array of content parts", value)
    texts: list[str] = []
    images: list[str] = []
    for j, item in enumerate(value):
        ppath = f"{path}[{j}]"
        part = as_object(item, ppath)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            text = part.get("text")
            if not isinstance(text, str):
                wrong_type(f"{ppath}.text", "a string", text)
            texts.append(text)
        elif kind == "refusal":
            texts.append(str(part.get("refusal") or ""))
        elif kind == "input_image":
            images.append(_image(part, ppath))
        else:
            fail(
                f"{ppath}.type",
                f"unsupported content part type {json.dumps(kind)} (use input_text, output_text or input_image)",
            )
    return "".join(texts), images


def _arguments(value: Any, path: str) -> dict[str, Any]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        wrong_type(path, "a JSON string", value)
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        fail(path, f"function call arguments are not valid JSON: {exc}")
    if not isinstance(parsed, dict):
        fail(path, "function call arguments must encode a JSON object")
    return parsed


def _output_text(value: Any, path: str) -> str:
    if isinstance(value, str):
        return value
    text, _ = _content(value, path)
    return text


class _Conversation:
    """Builds the Ollama message list item by item (tool calls merge into the assistant turn before them)."""

    def __init__(self, recall: Recall) -> None:
        self.recall = recall
        self.messages: list[dict[str, Any]] = []
        self.names: dict[str, str] = {}  # call_id → function name, for tool results
        self.thinking = ""

    def _assistant(self) -> dict[str, Any]:
        last = self.messages[-1] if self.messages else None
        if last is None or last["role"] != "assistant":
            last = {"role": "assistant", "content": ""}
            self.messages.append(last)
        if self.thinking:
            last["thinking"], self.thinking = self.thinking, ""
        return last

    def add(self, raw: Any, path: str) -> None:
        item = as_object(raw, path)
        kind = optional(item, "type", is_str, "a string", path)
        if kind is None and "role" in item:
            kind = "message"
        if kind == "message":
            role = item.get("role")
            if role not in MESSAGE_ROLES:
                fail(f"{path}.role", f"'{path}.role' must be one of {', '.join(MESSAGE_ROLES)}")
            text, images = _content(item.get("content"), f"{path}.content")
            if role == "assistant":
                self._assistant()["content"] += text
                return
            message: dict[str, Any] = {"role": "system" if role == "developer" else role, "content": text}
            if images:
                message["images"] = images
            self.messages.append(message)
        elif kind == "function_call":
            name = required_str(item, "name", path)
            call_id = required_str(item, "call_id", path)
            self.names[call_id] = name
            args = _arguments(item.get("arguments"), f"{path}.arguments")
            call = {"id": call_id, "function": {"name": name, "arguments": args}}
            self._assistant().setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            call_id = required_str(item, "call_id", path)
            message = {"role": "tool", "content": _output_text(item.get("output"), f"{path}.output")}
            if call_id in self.names:
                message["tool_name"] = self.names[call_id]
            self.messages.append(message)
        elif kind == "reasoning":
            summary = item.get("summary")
            parts = summary if isinstance(summary, list) else []
            self.thinking += "".join(str(p.get("text") or "") for p in parts if isinstance(p, dict))
        elif kind == "item_reference":
            ref = required_str(item, "id", path)
            kept = self.recall(ref)
            if kept is None:
                fail(
                    f"{path}.id",
                    f"unknown item '{ref}': herd keeps only its recent output items; send the item",
                )
            self.add(kept, path)
        else:
            fail(
                f"{path}.type",
                f"unsupported input item type {json.dumps(kind)} "
                "(use message, function_call, function_call_output or reasoning)",
            )


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = optional(body, "tools", is_list, "an array") or []
    out = []
    for j, raw in enumerate(tools):
        tool = as_object(raw, f"tools[{j}]")
        if tool.get("type") != "function":
            fail(f"tools[{j}].type", f"only function tools are supported, got {json.dumps(tool.get('type'))}")
        function: dict[str, Any] = {"name": required_str(tool, "name", f"tools[{j}]")}
        description = optional(tool, "description", is_str, "a string", f"tools[{j}]")
        if description:
            function["description"] = description
        params = optional(tool, "parameters", is_dict, "an object", f"tools[{j}]")
        function["parameters"] = params if params is not None else {"type": "object", "properties": {}}
        out.append({"type": "function", "function": function})
    if not out or body.get("tool_choice") == "none":
        return None
    return out


def _format(body: dict[str, Any]) -> str | dict[str, Any] | None:
    text = optional(body, "text", is_dict, "an object")
    fmt = optional(text or {}, "format", is_dict, "an object", "text")
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = optional(fmt, "schema", is_dict, "an object", "text.format")
        return schema if schema is not None else "json"
    fail("text.format.type", "'text.format.type' must be one of text, json_object, json_schema")


def _think(body: dict[str, Any]) -> bool | str | None:
    reasoning = optional(body, "reasoning", is_dict, "an object")
    effort = optional(reasoning or {}, "effort", is_str, "a string", "reasoning")
    if effort is None:
        return None
    if effort not in EFFORT_TO_THINK:
        fail("reasoning.effort", f"'reasoning.effort' must be one of {', '.join(EFFORT_TO_THINK)}")
    return EFFORT_TO_THINK[effort]


def _options(body: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    limit = optional(body, "max_output_tokens", is_int, "an integer")
    if limit is not None:
        if limit < 1:
            fail("max_output_tokens", "'max_output_tokens' must be at least 1")
        options["num_predict"] = limit
    for key in ("temperature", "top_p"):
        value = optional(body, key, is_number, "a number")
        if value is not None:
            options[key] = value
    return options


def _refuse_state(body: dict[str, Any]) -> None:
    if body.get("previous_response_id") is not None:
        fail(
            "previous_response_id",
            "herd does not store responses (store is not supported), so 'previous_response_id' cannot be "
            "resolved: send the whole conversation in 'input'",
        )
    if body.get("conversation") is not None:
        fail("conversation", "herd does not store conversations: send the whole conversation in 'input'")
    if optional(body, "background", is_bool, "a boolean") is True:
        fail("background", "background responses are not supported (herd stores no responses)")


ECHOED = (
    *("instructions", "max_output_tokens", "temperature", "top_p", "tools", "tool_choice", "reasoning"),
    *("text", "metadata", "parallel_tool_calls", "truncation"),
)


def request_to_ollama(
    body: dict[str, Any], recall: Recall = lambda _id: None
) -> tuple[dict[str, Any], ResponsesOptions]:
    """Validate a Responses request and build the Ollama `/api/chat` body (always streamed upstream).
    `recall` finds an output item herd produced recently, for `item_reference` inputs."""
    model = required_str(body, "model")
    stream = optional(body, "stream", is_bool, "a boolean") is True
    _refuse_state(body)
    conv = _Conversation(recall)
    instructions = optional(body, "instructions", is_str, "a string")
    if instructions:
        conv.messages.append({"role": "system", "content": instructions})
    raw = body.get("input")
    if isinstance(raw, str):
        conv.messages.append({"role": "user", "content": raw})
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            conv.add(item, f"input[{i}]")
    elif raw is None:
        fail("input", "'input' is required")
    else:
        wrong_type("input", "a string or an array of input items", raw)
    if not conv.messages:
        fail("input", "'input' must contain at least one item")
    out: dict[str, Any] = {"model": model, "messages": conv.messages, "stream": True}
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
    echo = {k: body[k] for k in ECHOED if body.get(k) is not None}
    return out, ResponsesOptions(model=model, stream=stream, echo=echo)

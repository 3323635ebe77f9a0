"""Anthropic Messages codec (pure): `POST /v1/messages` bodies → an Ollama `/api/chat` body, and Ollama chunks
→ Anthropic's event stream (`message_start`, content blocks, `message_delta`, `message_stop`) or one `message`.
Text, images (base64), system prompts, tools and tool results convert both ways."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from herd.errors import BadRequest
from herd.validate import model_name

STOP = {"stop": "end_turn", "length": "max_tokens"}


@dataclass(frozen=True, slots=True)
class MessagesOptions:
    model: str
    stream: bool


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and all(
        isinstance(b, dict) and isinstance(b.get("type"), str) for b in content
    ):
        return content
    raise BadRequest(f"'{where}' must be a string or a list of content blocks", param=where)


def _text(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")


def request_to_ollama(body: dict[str, Any]) -> tuple[dict[str, Any], MessagesOptions]:
    model = model_name(body.get("model"))
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequest("'max_tokens' is required and must be a positive integer", param="max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", param="messages")
    out: list[dict[str, Any]] = []
    if body.get("system") is not None:
        out.append({"role": "system", "content": _text(_blocks(body["system"], "system"))})
    names: dict[str, str] = {}  # tool_use id -> tool name, for tool results
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages[{i}].role must be 'user' or 'assistant'", param=f"messages[{i}].role")
        blocks = _blocks(msg.get("content"), f"messages[{i}].content")
        images = []
        for b in blocks:
            if b["type"] == "image":
                source = b.get("source") or {}
                if source.get("type") != "base64" or not isinstance(source.get("data"), str):
                    raise BadRequest(
                        "only base64 image sources are supported", param=f"messages[{i}].content"
                    )
                images.append(source["data"])
            elif b["type"] == "tool_result":
                content = b.get("content", "")
                text = (
                    content if isinstance(content, str) else _text(_blocks(content, f"messages[{i}].content"))
                )
                out.append(
                    {"role": "tool", "content": text, "tool_name": names.get(str(b.get("tool_use_id")), "")}
                )
        converted: dict[str, Any] = {"role": msg["role"], "content": _text(blocks)}
        if images:
            converted["images"] = images
        calls = [b for b in blocks if b["type"] == "tool_use"]
        if calls:
            for c in calls:
                names[str(c.get("id"))] = str(c.get("name"))
            converted["tool_calls"] = [
                {"function": {"name": c.get("name"), "arguments": c.get("input") or {}}} for c in calls
            ]
        if converted["content"] or images or calls:
            out.append(converted)
    options: dict[str, Any] = {"num_predict": max_tokens}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k")):
        value = body.get(ours)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BadRequest(f"'{ours}' must be a number", param=ours)
            options[theirs] = value
    if body.get("stop_sequences") is not None:
        stops = body["stop_sequences"]
        if not isinstance(stops, list) or not all(isinstance(x, str) for x in stops):
            raise BadRequest("'stop_sequences' must be a list of strings", param="stop_sequences")
        options["stop"] = stops
    converted_body: dict[str, Any] = {"model": model, "messages": out, "stream": True, "options": options}
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list) or not all(isinstance(t, dict) and t.get("name") for t in tools):
            raise BadRequest("'tools' must be a list of tools with a name", param="tools")
        converted_body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object"},
                },
            }
            for t in tools
        ]
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", param="stream")
    return converted_body, MessagesOptions(model, stream)


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _usage(final: dict[str, Any]) -> dict[str, int]:
    return {
        "input_tokens": int(final.get("prompt_eval_count") or 0),
        "output_tokens": int(final.get("eval_count") or 0),
    }


class MessagesStreamEncoder:
    """Ollama chunks → Anthropic's SSE events (same duck type as the OpenAI encoder for the relay)."""

    def __init__(self, model: str, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self.started = False
        self.text_open: int | None = None
        self.index = 0
        self.tool_used = False
        self.final: dict[str, Any] = {}

    def _start(self) -> bytes:
        self.started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _close_text(self) -> bytes:
        if self.text_open is None:
            return b""
        out = _event("content_block_stop", {"type": "content_block_stop", "index": self.text_open})
        self.text_open, self.index = None, self.index + 1
        return out

    def encode(self, chunk: dict[str, Any]) -> bytes:
        out = b"" if self.started else self._start()
        message = chunk.get("message") or {}
        text = message.get("content") or ""
        if text:
            if self.text_open is None:
                self.text_open = self.index
                out += _event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": self.index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            out += _event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": self.text_open,
                    "delta": {"type": "text_delta", "text": text},
                },
            )
        for call in message.get("tool_calls") or []:
            out += self._close_text()
            fn = call.get("function") or {}
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": "toolu_" + uuid.uuid4().hex[:20],
                "name": fn.get("name"),
                "input": {},
            }
            out += _event(
                "content_block_start",
                {"type": "content_block_start", "index": self.index, "content_block": block},
            )
            out += _event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": self.index,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": json.dumps(fn.get("arguments") or {}),
                    },
                },
            )
            out += _event("content_block_stop", {"type": "content_block_stop", "index": self.index})
            self.index += 1
            self.tool_used = True
        if chunk.get("done"):
            self.final = chunk
        return out

    def finish(self) -> bytes:
        out = (b"" if self.started else self._start()) + self._close_text()
        reason = "tool_use" if self.tool_used else STOP.get(str(self.final.get("done_reason")), "end_turn")
        out += _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": None},
                "usage": _usage(self.final),
            },
        )
        return out + _event("message_stop", {"type": "message_stop"})

    def error_event(self, message: str) -> bytes:
        return _event("error", {"type": "error", "error": {"type": "api_error", "message": message}})


class MessagesAccumulator:
    """Ollama chunks folded into one Anthropic `message` object."""

    def __init__(self, model: str, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self.text: list[str] = []
        self.tools: list[dict[str, Any]] = []
        self.final: dict[str, Any] = {}

    def add(self, chunk: dict[str, Any]) -> None:
        message = chunk.get("message") or {}
        if message.get("content"):
            self.text.append(message["content"])
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            self.tools.append(
                {
                    "type": "tool_use",
                    "id": "toolu_" + uuid.uuid4().hex[:20],
                    "name": fn.get("name"),
                    "input": fn.get("arguments") or {},
                }
            )
        if chunk.get("done"):
            self.final = chunk

    def result(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": "".join(self.text)}] if self.text else []
        content += self.tools
        reason = "tool_use" if self.tools else STOP.get(str(self.final.get("done_reason")), "end_turn")
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": reason,
            "stop_sequence": None,
            "usage": _usage(self.final),
        }

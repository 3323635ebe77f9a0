"""Ollama `/api/chat` chunks → OpenAI chat completion replies (pure).

Sits at the end of the OpenAI reply flow: `herd.routing.relay` decodes each NDJSON chunk from the node and
feeds it either to a `ChatStreamEncoder` (caller asked for `stream: true`: SSE `chat.completion.chunk` events,
an optional usage chunk and `data: [DONE]`) or to a `ChatAccumulator` (one `chat.completion` object).
Thinking text travels in the non-standard `reasoning` field, as in Ollama's own OpenAI layer.
"""

from __future__ import annotations

import json
import secrets
from typing import Any


def new_completion_id() -> str:
    """A fresh `chatcmpl-...` id."""
    return "chatcmpl-" + secrets.token_hex(12)


def new_call_id() -> str:
    """A fresh tool-call id for calls the backend did not name."""
    return "call_" + secrets.token_hex(6)


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (the hot path of every streamed event)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def finish_reason(done_reason: Any, saw_tool_calls: bool) -> str:
    """OpenAI's finish_reason for an Ollama `done_reason` ("stop", "length", "load", "unload", ...)."""
    if saw_tool_calls:
        return "tool_calls"
    if done_reason == "length":
        return "length"
    return "stop"


def _arguments_json(args: Any) -> str:
    if isinstance(args, str):
        return args
    return json.dumps({} if args is None else args, separators=(",", ":"), ensure_ascii=False)


def error_event(message: str) -> bytes:
    """An SSE event the official clients raise as an API error; the caller ends the stream after it."""
    error = {"message": message, "type": "server_error", "param": None, "code": None}
    return b"data: " + dumps({"error": error}) + b"\n\n"


class _ChunkReader:
    """State shared by the encoder and the accumulator: tool-call numbering, final counts, done reason."""

    def __init__(self) -> None:
        self.tool_calls_seen = 0
        self.done = False
        self.done_reason: Any = None
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def _read(self, chunk: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
        """(content, thinking, OpenAI tool calls) of one chunk; records the final chunk's counts."""
        message = chunk.get("message")
        if not isinstance(message, dict):
            message = {}
        content = message.get("content")
        thinking = message.get("thinking")
        calls = self._tool_calls(message.get("tool_calls"))
        if chunk.get("done") is True:
            self.done = True
            self.done_reason = chunk.get("done_reason")
            self.prompt_tokens = _count(chunk.get("prompt_eval_count"))
            self.completion_tokens = _count(chunk.get("eval_count"))
        return (
            content if isinstance(content, str) else "",
            thinking if isinstance(thinking, str) else "",
            calls,
        )

    def _tool_calls(self, raw: Any) -> list[dict[str, Any]]:
        """Ollama tool calls (complete, arguments as an object) → OpenAI's, numbered across the reply."""
        if not isinstance(raw, list):
            return []
        out: list[dict[str, Any]] = []
        for call in raw:
            if not isinstance(call, dict):
                continue
            function = call.get("function")
            if not isinstance(function, dict):
                function = {}
            name = function.get("name")
            call_id = call.get("id")
            out.append(
                {
                    "index": self.tool_calls_seen,
                    "id": call_id if isinstance(call_id, str) and call_id else new_call_id(),
                    "type": "function",
                    "function": {
                        "name": name if isinstance(name, str) else "",
                        "arguments": _arguments_json(function.get("arguments")),
                    },
                }
            )
            self.tool_calls_seen += 1
        return out

    def _finish_reason(self) -> str:
        return finish_reason(self.done_reason, self.tool_calls_seen > 0)

    def _usage(self) -> dict[str, int]:
        return usage(self.prompt_tokens, self.completion_tokens)


class ChatStreamEncoder(_ChunkReader):
    """Re-encodes one Ollama chat stream as OpenAI SSE events (`data: {...}\\n\\n`)."""

    def __init__(self, model: str, completion_id: str, created: int, include_usage: bool) -> None:
        super().__init__()
        self.include_usage = include_usage
        self._role_sent = False
        # Every event shares id/created/model, so its JSON head is built once; `choices` comes last.
        head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        self._head = b"data: " + dumps(head)[:-1] + b',"choices":'

    def _event(self, delta: dict[str, Any], reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return self._head + b"[" + dumps(choice) + b"]}\n\n"

    def encode(self, chunk: dict[str, Any]) -> bytes:
        """SSE bytes for one decoded Ollama chunk (b"" when it carries nothing to send)."""
        if self.done:
            return b""
        content, thinking, calls = self._read(chunk)
        delta: dict[str, Any] = {}
        if not self._role_sent:
            delta["role"] = "assistant"
        if content:
            delta["content"] = content
        if thinking:
            delta["reasoning"] = thinking
        if calls:
            delta["tool_calls"] = calls
        out = b""
        if content or thinking or calls or not (self._role_sent or self.done):
            if len(delta) == 1 and "role" in delta:
                delta["content"] = ""
            out = self._event(delta, None)
            self._role_sent = True
        if self.done:
            final = {} if self._role_sent else {"role": "assistant", "content": ""}
            self._role_sent = True
            out += self._event(final, self._finish_reason())
        return out

    def finish(self) -> bytes:
        """After the final chunk: the usage chunk (if asked for), then `data: [DONE]`."""
        out = b""
        if self.include_usage:
            out = self._head + b'[],"usage":' + dumps(self._usage()) + b"}\n\n"
        return out + b"data: [DONE]\n\n"

    def error_event(self, message: str) -> bytes:
        return error_event(message)


class ChatAccumulator(_ChunkReader):
    """Folds one Ollama chat stream into a single OpenAI `chat.completion` object."""

    def __init__(self, model: str, completion_id: str, created: int) -> None:
        super().__init__()
        self.model = model
        self.completion_id = completion_id
        self.created = created
        self._content: list[str] = []
        self._thinking: list[str] = []
        self._calls: list[dict[str, Any]] = []

    def add(self, chunk: dict[str, Any]) -> None:
        content, thinking, calls = self._read(chunk)
        if content:
            self._content.append(content)
        if thinking:
            self._thinking.append(thinking)
        for call in calls:
            del call["index"]  # a message's tool_calls carry no index, only deltas do
            self._calls.append(call)

    def result(self) -> dict[str, Any]:
        text = "".join(self._content)
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not self._calls else None}
        if self._thinking:
            message["reasoning"] = "".join(self._thinking)
        if self._calls:
            message["tool_calls"] = self._calls
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": self._finish_reason()}
            ],
            "usage": self._usage(),
        }

"""Ollama `/api/chat` chunks → OpenAI Responses API replies (pure).

Sits at the end of the Responses flow: `herd.routing.relay` decodes each NDJSON chunk from the node and feeds it
to a `ResponsesStreamEncoder` (`stream: true`) or a `ResponsesAccumulator` (one `response` object). Both drive
the same `_Builder`, so the streamed events and the final object always agree.

Streamed events are SSE `event: <type>` + `data: {..., "type", "sequence_number"}`, in the documented order:
`response.created`, `response.in_progress`; per output item `response.output_item.added`, then for a message
`response.content_part.added`, `response.output_text.delta`…, `response.output_text.done`,
`response.content_part.done`; for a function call `response.function_call_arguments.delta` / `.done`; for
reasoning (Ollama's `thinking`) `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`…
/ `.done`, `response.reasoning_summary_part.done`; then `response.output_item.done`; finally
`response.completed` (also when the token limit cut the answer: then its response says `status: "incomplete"`,
as Ollama does, because the official clients' `get_final_response()` waits for `response.completed`; OpenAI
itself would send `response.incomplete`). A failure after the first
byte is an `error` event followed by `response.failed`. Usage: `input_tokens`, `output_tokens`, `total_tokens`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from herd.dialects.openai_stream import dumps
from herd.dialects.responses import ResponsesOptions


def new_response_id() -> str:
    return "resp_" + secrets.token_hex(16)


def _id(prefix: str) -> str:
    return prefix + "_" + secrets.token_hex(12)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _summary_part(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


# The two item kinds whose text streams: (index field, part events, text events, part shape, extra fields)
STREAMED: dict[str, tuple[str, str, str, Callable[[str], dict[str, Any]], dict[str, Any]]] = {
    "message": (
        "content_index",
        "response.content_part",
        "response.output_text",
        _text_part,
        {"logprobs": []},
    ),
    "reasoning": (
        "summary_index",
        "response.reasoning_summary_part",
        "response.reasoning_summary_text",
        _summary_part,
        {},
    ),
}
Event = tuple[str, dict[str, Any]]
Keep = Callable[[list[dict[str, Any]]], None]


def _arguments(args: Any) -> str:
    if isinstance(args, str):
        return args
    return json.dumps(args or {}, separators=(",", ":"), ensure_ascii=False)


class _Builder:
    """The Responses state machine over Ollama chunks: open items, their text, the final object. Each step
    appends its events to `events`; the encoder drains them."""

    def __init__(
        self, model: str, response_id: str, created: int, opts: ResponsesOptions, keep: Keep | None
    ) -> None:
        self.model, self.response_id, self.created, self.opts = model, response_id, created, opts
        self.keep = keep  # told the finished output items (herd.routing.items)
        self.seq = 0
        self.events: list[Event] = []
        self.started = False
        self.output: list[dict[str, Any]] = []  # finished items, by output_index
        self.open: dict[str, Any] | None = None  # the item being streamed (message or reasoning)
        self.text = ""
        self.final: dict[str, Any] = {}

    def _emit(self, kind: str, **data: Any) -> None:
        self.events.append((kind, {"type": kind, "sequence_number": self.seq, **data}))
        self.seq += 1

    def drain(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def response(self, status: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
        echo = self.opts.echo
        fmt = (echo.get("text") or {}).get("format") if isinstance(echo.get("text"), dict) else None
        done = status in ("completed", "incomplete")
        prompt, completion = _count(self.final.get("prompt_eval_count")), _count(self.final.get("eval_count"))
        usage = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        }
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created,
            "completed_at": int(time.time()) if done else None,
            "status": status,
            "error": error,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": echo.get("instructions"),
            "max_output_tokens": echo.get("max_output_tokens"),
            "model": self.model,
            "output": list(self.output) if done or error else [],
            "parallel_tool_calls": echo.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": echo.get("reasoning"),
            "store": False,
            "temperature": echo.get("temperature", 1.0),
            "text": {"format": fmt if isinstance(fmt, dict) else {"type": "text"}},
            "tool_choice": echo.get("tool_choice", "auto"),
            "tools": echo.get("tools", []),
            "top_p": echo.get("top_p", 1.0),
            "truncation": echo.get("truncation", "disabled"),
            "usage": usage if done else None,
            "metadata": echo.get("metadata", {}),
        }

    def start(self) -> None:
        if not self.started:
            self.started = True
            snapshot = self.response("in_progress")
            self._emit("response.created", response=snapshot)
            self._emit("response.in_progress", response=snapshot)

    def _close(self) -> None:
        """Finish the open message or reasoning item."""
        item, self.open = self.open, None
        if item is None:
            return
        field, part_event, text_event, shape, extra = STREAMED[item["type"]]
        at = {"item_id": item["id"], "output_index": len(self.output), field: 0}
        part = shape(self.text)
        self._emit(f"{text_event}.done", **at, text=self.text, **extra)
        self._emit(f"{part_event}.done", **at, part=part)
        if item["type"] == "message":
            done = {**item, "status": "completed", "content": [part]}
        else:
            done = {**item, "summary": [part]}
        self._emit("response.output_item.done", output_index=len(self.output), item=done)
        self.output.append(done)
        self.text = ""

    def _delta(self, kind: str, text: str) -> None:
        field, part_event, text_event, shape, extra = STREAMED[kind]
        if self.open is None or self.open["type"] != kind:
            self._close()
            if kind == "message":
                item: dict[str, Any] = {"id": _id("msg"), "type": "message", "status": "in_progress"}
                item |= {"role": "assistant", "content": []}
            else:
                item = {"id": _id("rs"), "type": "reasoning", "summary": []}
            self.open = item
            self._emit("response.output_item.added", output_index=len(self.output), item=item)
            at = {"item_id": item["id"], "output_index": len(self.output), field: 0}
            self._emit(f"{part_event}.added", **at, part=shape(""))
        self.text += text
        at = {"item_id": self.open["id"], "output_index": len(self.output), field: 0}
        self._emit(f"{text_event}.delta", **at, delta=text, **extra)

    def _call(self, call: Any) -> None:
        self._close()
        call = call if isinstance(call, dict) else {}
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = _arguments(fn.get("arguments"))
        call_id = call.get("id") if isinstance(call.get("id"), str) and call["id"] else _id("call")
        name = fn.get("name") if isinstance(fn.get("name"), str) else ""
        item = {"id": _id("fc"), "type": "function_call", "status": "in_progress", "call_id": call_id}
        item |= {"name": name, "arguments": ""}
        at = {"item_id": item["id"], "output_index": len(self.output)}
        self._emit("response.output_item.added", output_index=len(self.output), item=item)
        self._emit("response.function_call_arguments.delta", **at, delta=arguments)
        self._emit("response.function_call_arguments.done", **at, name=name, arguments=arguments)
        done = {**item, "status": "completed", "arguments": arguments}
        self._emit("response.output_item.done", output_index=len(self.output), item=done)
        self.output.append(done)

    def chunk(self, chunk: dict[str, Any]) -> None:
        self.start()
        raw = chunk.get("message")
        message: dict[str, Any] = raw if isinstance(raw, dict) else {}
        thinking, content = message.get("thinking"), message.get("content")
        if isinstance(thinking, str) and thinking:
            self._delta("reasoning", thinking)
        if isinstance(content, str) and content:
            self._delta("message", content)
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            self._call(call)
        if chunk.get("done") is True:
            self.final = chunk

    def status(self) -> str:
        return "incomplete" if self.final.get("done_reason") == "length" else "completed"

    def finish(self) -> None:
        self.start()
        if not self.output and self.open is None:
            self._delta("message", "")  # an empty answer is still one (empty) message
        self._close()
        status = self.status()
        self._emit("response.completed", response=self.response(status))
        if self.keep is not None:
            self.keep(self.output)

    def failed(self, message: str) -> None:
        self.start()
        self._close()
        self._emit("error", code="server_error", message=message, param=None)
        error = {"code": "server_error", "message": message}
        self._emit("response.failed", response=self.response("failed", error))


def _sse(events: list[Event]) -> bytes:
    return b"".join(b"event: " + kind.encode() + b"\ndata: " + dumps(data) + b"\n\n" for kind, data in events)


class ResponsesStreamEncoder:
    """Re-encodes one Ollama chat stream as Responses API SSE events (a `herd.routing.relay.StreamEncoder`)."""

    def __init__(
        self, model: str, response_id: str, created: int, opts: ResponsesOptions, keep: Keep | None = None
    ) -> None:
        self._b = _Builder(model, response_id, created, opts, keep)

    def encode(self, chunk: dict[str, Any]) -> bytes:
        self._b.chunk(chunk)
        return _sse(self._b.drain())

    def finish(self) -> bytes:
        self._b.finish()
        return _sse(self._b.drain())

    def error_event(self, message: str) -> bytes:
        self._b.failed(message)
        return _sse(self._b.drain())


class ResponsesAccumulator:
    """Folds one Ollama chat stream into a single Responses API `response` object."""

    def __init__(
        self, model: str, response_id: str, created: int, opts: ResponsesOptions, keep: Keep | None = None
    ) -> None:
        self._b = _Builder(model, response_id, created, opts, keep)

    def add(self, chunk: dict[str, Any]) -> None:
        self._b.chunk(chunk)
        self._b.drain()

    def result(self) -> dict[str, Any]:
        self._b.finish()
        return self._b.response(self._b.status())

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
`response.completed` (or `response.incomplete` when the token limit cut the answer). A failure after the first
byte is an `error` event followed by `response.failed`. Usage: `input_tokens`, `output_tokens`, `total_tokens`.
"""

from __future__ import annotations

import json
import secrets
import time
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


class _Builder:
    """The Responses state machine over Ollama chunks: open items, their text, the final object."""

    def __init__(self, model: str, response_id: str, created: int, opts: ResponsesOptions) -> None:
        self.model, self.response_id, self.created, self.opts = model, response_id, created, opts
        self.seq = 0
        self.started = False
        self.output: list[dict[str, Any]] = []  # finished items, by output_index
        self.open: dict[str, Any] | None = None  # the item being streamed (message or reasoning)
        self.text = ""
        self.final: dict[str, Any] = {}

    def _event(self, kind: str, **data: Any) -> tuple[str, dict[str, Any]]:
        event = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return kind, event

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

    def start(self) -> list[tuple[str, dict[str, Any]]]:
        if self.started:
            return []
        self.started = True
        snapshot = self.response("in_progress")
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def _close(self) -> list[tuple[str, dict[str, Any]]]:
        """Finish the open message or reasoning item."""
        item, self.open = self.open, None
        if item is None:
            return []
        index, item_id = len(self.output), item["id"]
        events = []
        if item["type"] == "message":
            part = _text_part(self.text)
            events.append(
                self._event(
                    "response.output_text.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    text=self.text,
                    logprobs=[],
                )
            )
            events.append(
                self._event(
                    "response.content_part.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
            done = {**item, "status": "completed", "content": [part]}
        else:
            part = {"type": "summary_text", "text": self.text}
            events.append(
                self._event(
                    "response.reasoning_summary_text.done",
                    item_id=item_id,
                    output_index=index,
                    summary_index=0,
                    text=self.text,
                )
            )
            events.append(
                self._event(
                    "response.reasoning_summary_part.done",
                    item_id=item_id,
                    output_index=index,
                    summary_index=0,
                    part=part,
                )
            )
            done = {**item, "summary": [part]}
        self.output.append(done)
        self.text = ""
        events.append(self._event("response.output_item.done", output_index=index, item=done))
        return events

    def _open(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        if self.open is not None and self.open["type"] == kind:
            return []
        events = self._close()
        index = len(self.output)
        if kind == "message":
            item = {
                "id": _id("msg"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
        else:
            item = {"id": _id("rs"), "type": "reasoning", "summary": []}
        self.open = item
        events.append(self._event("response.output_item.added", output_index=index, item=item))
        if kind == "message":
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=_text_part(""),
                )
            )
        else:
            part = {"type": "summary_text", "text": ""}
            events.append(
                self._event(
                    "response.reasoning_summary_part.added",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    part=part,
                )
            )
        return events

    def _delta(self, kind: str, text: str) -> list[tuple[str, dict[str, Any]]]:
        events = self._open(kind)
        assert self.open is not None
        self.text += text
        item_id, index = self.open["id"], len(self.output)
        if kind == "message":
            events.append(
                self._event(
                    "response.output_text.delta",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    delta=text,
                    logprobs=[],
                )
            )
        else:
            events.append(
                self._event(
                    "response.reasoning_summary_text.delta",
                    item_id=item_id,
                    output_index=index,
                    summary_index=0,
                    delta=text,
                )
            )
        return events

    def _call(self, call: Any) -> list[tuple[str, dict[str, Any]]]:
        events = self._close()
        fn = call.get("function") if isinstance(call, dict) else None
        fn = fn if isinstance(fn, dict) else {}
        args = fn.get("arguments")
        arguments = (
            args
            if isinstance(args, str)
            else json.dumps(args or {}, separators=(",", ":"), ensure_ascii=False)
        )
        call_id = (
            call.get("id")
            if isinstance(call, dict) and isinstance(call.get("id"), str) and call["id"]
            else _id("call")
        )
        name = fn.get("name") if isinstance(fn.get("name"), str) else ""
        item = {
            "id": _id("fc"),
            "type": "function_call",
            "status": "in_progress",
            "call_id": call_id,
            "name": name,
            "arguments": "",
        }
        index = len(self.output)
        events.append(self._event("response.output_item.added", output_index=index, item=item))
        events.append(
            self._event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=arguments,
            )
        )
        events.append(
            self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=name,
                arguments=arguments,
            )
        )
        done = {**item, "status": "completed", "arguments": arguments}
        self.output.append(done)
        events.append(self._event("response.output_item.done", output_index=index, item=done))
        return events

    def chunk(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        events = self.start()
        raw = chunk.get("message")
        message: dict[str, Any] = raw if isinstance(raw, dict) else {}
        thinking, content = message.get("thinking"), message.get("content")
        if isinstance(thinking, str) and thinking:
            events += self._delta("reasoning", thinking)
        if isinstance(content, str) and content:
            events += self._delta("message", content)
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            events += self._call(call)
        if chunk.get("done") is True:
            self.final = chunk
        return events

    def status(self) -> str:
        return "incomplete" if self.final.get("done_reason") == "length" else "completed"

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        events = self.start()
        if not self.output and self.open is None:
            events += self._open("message")  # an empty answer is still one (empty) message
        events += self._close()
        status = self.status()
        events.append(self._event(f"response.{status}", response=self.response(status)))
        return events

    def failed(self, message: str) -> list[tuple[str, dict[str, Any]]]:
        events = self.start()
        events += self._close()
        error = {"code": "server_error", "message": message}
        events.append(self._event("error", code="server_error", message=message, param=None))
        events.append(self._event("response.failed", response=self.response("failed", error)))
        return events


def _sse(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(b"event: " + kind.encode() + b"\ndata: " + dumps(data) + b"\n\n" for kind, data in events)


class ResponsesStreamEncoder:
    """Re-encodes one Ollama chat stream as Responses API SSE events (a `herd.routing.relay.StreamEncoder`)."""

    def __init__(self, model: str, response_id: str, created: int, opts: ResponsesOptions) -> None:
        self._b = _Builder(model, response_id, created, opts)

    def encode(self, chunk: dict[str, Any]) -> bytes:
        return _sse(self._b.chunk(chunk))

    def finish(self) -> bytes:
        return _sse(self._b.finish())

    def error_event(self, message: str) -> bytes:
        return _sse(self._b.failed(message))


class ResponsesAccumulator:
    """Folds one Ollama chat stream into a single Responses API `response` object."""

    def __init__(self, model: str, response_id: str, created: int, opts: ResponsesOptions) -> None:
        self._b = _Builder(model, response_id, created, opts)

    def add(self, chunk: dict[str, Any]) -> None:
        self._b.chunk(chunk)

    def result(self) -> dict[str, Any]:
        self._b.finish()
        return self._b.response(self._b.status())

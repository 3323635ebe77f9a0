"""OpenAI dialect codec: the one import for `herd.web` and `herd.routing` (pure, no I/O).

Requests: `chat_request_to_ollama` (in `openai_request`) turns a `/v1/chat/completions` body into an Ollama
`/api/chat` body. Replies: `ChatStreamEncoder` / `ChatAccumulator` (in `openai_stream`) turn Ollama chunks
into SSE events or one `chat.completion`. This module adds the model listings built from Ollama `/api/tags`
entries and OpenAI-shaped error bodies.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from herd.dialects.openai_request import ChatOptions, chat_request_to_ollama
from herd.dialects.openai_stream import ChatAccumulator, ChatStreamEncoder, new_completion_id

__all__ = [
    "ChatAccumulator",
    "ChatOptions",
    "ChatStreamEncoder",
    "chat_request_to_ollama",
    "error_body",
    "model_object",
    "models_list",
    "new_completion_id",
    "unix_time",
]

_EXTRA_DIGITS = re.compile(r"(\.\d{6})\d+")


def unix_time(stamp: Any) -> int:
    """Seconds since the epoch for an ISO 8601 time as Ollama writes it (nanoseconds, offset); 0 if unreadable."""
    if not isinstance(stamp, str) or not stamp:
        return 0
    text = stamp.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    text = _EXTRA_DIGITS.sub(r"\1", text, count=1)  # Go writes nanoseconds; Python takes microseconds
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return 0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, int(when.timestamp()))


def _owner(name: str) -> str:
    """The namespace of `[host/]namespace/model[:tag]`; models without one belong to "library"."""
    parts = name.split("/")
    return parts[-2] if len(parts) > 1 and parts[-2] else "library"


def model_object(entry: dict[str, Any]) -> dict[str, Any]:
    """One Ollama `/api/tags` entry → an OpenAI `model` object."""
    name = entry.get("name") or entry.get("model") or ""
    name = name if isinstance(name, str) else str(name)
    out = {
        "id": name,
        "object": "model",
        "created": unix_time(entry.get("modified_at")),
        "owned_by": _owner(name),
    }
    for extra in ("capabilities", "nodes", "alias_of"):  # herd's additions: what it can do, and where it runs
        if extra in entry:
            out[extra] = entry[extra]
    return out


def media_model_object(item: dict[str, Any], created: int) -> dict[str, Any]:
    """One image or transcription model of the fleet (`herd.routing.media.catalog`) as an OpenAI `model`."""
    return {
        "id": item["name"],
        "object": "model",
        "created": created,
        "owned_by": "herd",
        "capabilities": [item["kind"]],
        "nodes": [n["node_id"] for n in item["nodes"]],
    }


def models_list(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Ollama `/api/tags` entries → the OpenAI `GET /v1/models` body."""
    return {"object": "list", "data": [model_object(e) for e in entries]}


def error_body(message: str, *, type: str, param: str | None, code: str | None) -> bytes:
    """An OpenAI error body: `{"error": {"message", "type", "param", "code"}}`."""
    error = {"message": message, "type": type, "param": param, "code": code}
    return json.dumps({"error": error}, ensure_ascii=False).encode("utf-8", "replace")

"""Relays: turn an opened backend stream into the bytes the caller's dialect expects.

Fast path (Ollama caller, Ollama node): lines pass through untouched; only the final `done` line is parsed.
OpenAI and Anthropic callers get each chunk re-encoded by their dialect's encoder. A failure after the first byte ends the
stream with a well-formed error in the caller's dialect, never a silently cut body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from herd.backends.upstream import UpstreamError
from herd.dialects import ollama as ollama_codec
from herd.errors import UpstreamFailed
from herd.routing.proxy import Opened
from herd.routing.record import RequestRecord as Outcome

log = logging.getLogger("herd.relay")


def _is_final(line: bytes) -> bool:
    return b'"done":true' in line or b'"done": true' in line


def _record_final(outcome: Outcome, line: bytes) -> None:
    outcome.done = True
    try:
        outcome.final = json.loads(line)
    except ValueError:
        outcome.final = {}


def cut(opened: Opened, outcome: Outcome, why: str) -> str:
    outcome.error = why
    log.warning("stream from %s for %s failed after first byte: %s", opened.node.node_id, opened.model, why)
    return f"herd: node {opened.node.node_id} failed mid-stream: {why}"


def _last_line(block: bytes) -> bytes:
    return block[block.rfind(b"\n", 0, len(block) - 1) + 1 :]


async def ndjson(opened: Opened, outcome: Outcome) -> AsyncIterator[bytes]:
    """Ollama caller: relay NDJSON as it arrives, a burst of complete lines per send; only the final
    `done` line is parsed."""
    lines = opened.lines
    try:
        while (block := await lines.next_batch()) is not None:
            if _is_final(block):
                _record_final(outcome, _last_line(block))
            elif block.startswith(b'{"error"') or b'\n{"error"' in block:
                outcome.error = _last_line(block).decode("utf-8", "replace").strip()
                outcome.done = True
            yield block
    except UpstreamError as exc:
        yield ollama_codec.error_line(cut(opened, outcome, str(exc)))
        return
    if not outcome.done:
        yield ollama_codec.error_line(cut(opened, outcome, "stream ended without a final 'done' chunk"))


async def whole(opened: Opened, outcome: Outcome) -> bytes:
    """Ollama caller with `stream: false`: the backend's single JSON object, checked for completeness."""
    try:
        body = await opened.lines.read_all()
    except UpstreamError as exc:
        raise UpstreamFailed(cut(opened, outcome, str(exc))) from exc
    if not _is_final(body):
        raise UpstreamFailed(cut(opened, outcome, "response ended before it was complete"))
    _record_final(outcome, body)
    return body


async def _chunks(opened: Opened, outcome: Outcome) -> AsyncIterator[dict[str, Any]]:
    async for line in opened.lines:
        chunk = json.loads(line)
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            raise UpstreamError("backend", str(chunk["error"]))
        if chunk.get("done"):
            outcome.done = True
            outcome.final = chunk
        yield chunk


class StreamEncoder(Protocol):
    """A caller dialect's stream encoder (OpenAI chat completions, Anthropic messages)."""

    def encode(self, chunk: dict[str, Any]) -> bytes: ...

    def finish(self) -> bytes: ...

    def error_event(self, message: str) -> bytes: ...


class Accumulator(Protocol):
    def add(self, chunk: dict[str, Any]) -> None: ...

    def result(self) -> dict[str, Any]: ...


async def sse(opened: Opened, outcome: Outcome, encoder: StreamEncoder) -> AsyncIterator[bytes]:
    """A translated caller, `stream: true`: Ollama chunks re-encoded as the caller's SSE events."""
    try:
        async for chunk in _chunks(opened, outcome):
            data = encoder.encode(chunk)
            if data:
                yield data
    except (UpstreamError, ValueError) as exc:
        yield encoder.error_event(cut(opened, outcome, str(exc)))
        return
    if not outcome.done:
        yield encoder.error_event(cut(opened, outcome, "stream ended without a final chunk"))
        return
    yield encoder.finish()


async def fold(opened: Opened, outcome: Outcome, acc: Accumulator) -> dict[str, Any]:
    """A translated caller, `stream: false`: the chunks folded into the caller's one reply object."""
    try:
        async for chunk in _chunks(opened, outcome):
            acc.add(chunk)
    except (UpstreamError, ValueError) as exc:
        raise UpstreamFailed(cut(opened, outcome, str(exc))) from exc
    if not outcome.done:
        raise UpstreamFailed(cut(opened, outcome, "response ended before it was complete"))
    return acc.result()


async def json_body(opened: Opened, outcome: Outcome) -> bytes:
    """A one-object JSON reply with no `done` marker (embeddings): the whole body, or a 502 if it broke off."""
    try:
        body = await opened.lines.read_all()
    except UpstreamError as exc:
        raise UpstreamFailed(cut(opened, outcome, str(exc))) from exc
    outcome.done = True
    return body

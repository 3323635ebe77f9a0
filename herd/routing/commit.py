"""Where a response commits to its node (pure): the point up to which `herd.routing.proxy` reads ahead inside
its retry loop, so a node that fails before it is retried on another node and the caller never sees it.

- A streamed reply commits at its first content: a line that carries text, thinking or a tool call, ends the
  reply (`done`, `finish_reason`, `[DONE]`, usage), or cannot be judged (not JSON: the relay reports it).
  Lines before it (an OpenAI server's role-only first delta, keep-alive comments) are held back; a cut or an
  `{"error"}` among them fails the attempt.
- A reply the caller gets in one piece (`stream: false`, embeddings) commits when it is complete: read to the
  end and checked (`done` line, an OpenAI node's `choices`), so any failure of the node is retried.

The lines stay buffered in the attempt's `LineStream`; the relays read them as if nothing had happened.
"""

from __future__ import annotations

import json
from typing import Any

WAIT = "wait"
GO = "go"


def _fail(err: Any) -> str:
    if isinstance(err, dict):
        err = err.get("message", err)
    return "error: " + str(err)[:500]


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """`raw` as a JSON object; None when it is not one (a line that cannot be judged commits)."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _ollama_line(line: bytes) -> str:
    obj = _json_object(line)
    if obj is None:
        return GO
    if "error" in obj:
        return _fail(obj["error"])
    if obj.get("done") or obj.get("response") or obj.get("thinking"):
        return GO
    msg = obj.get("message")
    if isinstance(msg, dict) and any(msg.get(k) for k in ("content", "thinking", "tool_calls", "images")):
        return GO
    return WAIT


def _sse_line(line: bytes) -> str:
    if not line.startswith(b"data:"):
        return WAIT  # event names, comments, blank keep-alives
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return GO
    obj = _json_object(payload)
    if obj is None:
        return GO
    if "error" in obj:
        return _fail(obj["error"])
    if obj.get("usage"):
        return GO
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            return GO
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        if choice.get("finish_reason") or choice.get("text"):
            return GO
        if any(delta.get(k) for k in ("content", "reasoning_content", "reasoning", "tool_calls", "refusal")):
            return GO
    return WAIT


def first_content(buf: bytes, native: bool, eof: bool) -> str:
    """A streamed reply's verdict so far: WAIT for more, GO (committed), or "error: ..." (fail the attempt).
    `native`: the lines are an OpenAI server's SSE; else Ollama NDJSON. Only complete lines count until EOF."""
    lines = buf.split(b"\n")
    if not eof:
        lines.pop()  # an incomplete line: wait for the rest of it
    judge = _sse_line if native else _ollama_line
    for line in lines:
        if line.strip():
            verdict = judge(line.strip())
            if verdict != WAIT:
                return verdict
    return "error: stream ended before any content" if eof else WAIT


def complete(body: bytes, native: bool, expects_done: bool) -> str:
    """A whole reply's verdict once the node has closed it: GO, or "error: ..." (fail the attempt).
    `expects_done`: Ollama chat/generate replies end with a `done` line (embeddings do not)."""
    if native:
        try:
            obj = json.loads(body)
        except ValueError:
            return "error: the node's answer is not JSON"
        if isinstance(obj, dict) and "error" in obj:
            return _fail(obj["error"])
        if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
            return "error: the node's answer has no choices"
        return GO
    if not expects_done:
        return GO
    stripped = body.rstrip()
    last = stripped[stripped.rfind(b"\n") + 1 :]
    if b'"error"' not in last and (b'"done":true' in last or b'"done": true' in last):
        return GO  # a done line with no error key: complete (the relay parses it once, for its counts)
    verdict = _ollama_line(last) if last else "error: empty response"
    if verdict.startswith("error"):
        return verdict
    if not (b'"done":true' in last or b'"done": true' in last):
        return "error: response ended before it was complete"
    return GO

"""The native path: an OpenAI caller served by an OpenAI-compatible node. The node's own bytes go back to the
caller (every field it sends survives: logprobs, tool-call ids, system fingerprints), and only the lines that
matter to herd are parsed: the usage chunk (token counts and llama.cpp timings for the record), errors and
`[DONE]`.

`herd.web.openai_api` picks these relays when `Opened.native` is set by `herd.routing.proxy` (see
`herd.backends.kinds.request_for`). As in every relay, a failure after the first byte ends the stream with an
error event in the caller's dialect, never a silently cut body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import trio

from herd.backends.openai_response import counts
from herd.backends.upstream import UpstreamError
from herd.dialects.openai_stream import error_event
from herd.errors import UpstreamFailed
from herd.routing.proxy import Opened
from herd.routing.record import RequestRecord as Outcome
from herd.routing.relay import cut


def _finish(outcome: Outcome, obj: dict[str, Any], first: float | None, last: float | None) -> None:
    usage: dict[str, Any] = obj["usage"] if isinstance(obj.get("usage"), dict) else {}
    timings: dict[str, Any] = obj["timings"] if isinstance(obj.get("timings"), dict) else {}
    outcome.final = counts(usage, timings, outcome.started, first, last, trio.current_time())


async def sse(opened: Opened, outcome: Outcome, *, include_usage: bool) -> AsyncIterator[bytes]:
    """`stream: true`: relay the node's SSE; drop the usage-only chunk herd asked for unless the caller did."""
    first: float | None = None
    last: float | None = None
    try:
        while (block := await opened.lines.next_batch()) is not None:
            now = trio.current_time()
            if b'"usage"' not in block and b"[DONE]" not in block and b'"error"' not in block:
                if b'"content"' in block or b'"tool_calls"' in block:
                    first, last = first or now, now
                yield block
                continue
            out = []
            for line in block.splitlines(keepends=True):
                payload = line[5:].strip() if line.startswith(b"data:") else b""
                if payload == b"[DONE]":
                    outcome.done = True
                elif payload.startswith(b"{") and (b'"usage"' in payload or b'"error"' in payload):
                    obj = json.loads(payload)
                    if "error" in obj:
                        outcome.error, outcome.done = str(obj["error"])[:500], True
                    elif isinstance(obj.get("usage"), dict):
                        _finish(outcome, obj, first, last)
                        if obj.get("choices") == [] and not include_usage:
                            continue  # asked for by herd, not by the caller
                elif b'"content"' in payload:
                    first, last = first or now, now
                out.append(line)
            if out:
                yield b"".join(out)
    except (UpstreamError, ValueError) as exc:
        yield error_event(cut(opened, outcome, str(exc)))
        return
    if not outcome.done:
        yield error_event(cut(opened, outcome, "stream ended without [DONE]"))


async def whole(opened: Opened, outcome: Outcome) -> bytes:
    """`stream: false`: the node's one `chat.completion`, checked and recorded, passed on unchanged."""
    try:
        body = await opened.lines.read_all()
        obj = json.loads(body)
    except (UpstreamError, ValueError) as exc:
        raise UpstreamFailed(cut(opened, outcome, str(exc))) from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
        raise UpstreamFailed(cut(opened, outcome, "the node's answer has no choices"))
    _finish(outcome, obj, None, None)
    outcome.done = True
    return body

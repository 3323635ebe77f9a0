"""OpenAI-compatible backend answers → Ollama NDJSON chunks, so every relay downstream works unchanged.

`herd.backends.kinds` wraps the node's raw body chunks with `to_ollama` when the node speaks OpenAI; the
result feeds `herd.routing.lines.LineStream` exactly as an Ollama node's bytes would. Streams (SSE) become one
Ollama chunk per delta and a final `done: true` chunk; single JSON answers become one Ollama object.

Counts and durations are honest: token counts from the backend's `usage` (or llama.cpp's `timings`), durations
from `timings` when the backend reports them, else measured here on the clock (prompt = until the first
token, eval = first to last token, total = the whole exchange). Nothing is made up: a count the backend did not
give is left out. A stream that ends without a finish reason or `[DONE]` gets no final chunk, so the relay
reports it as cut rather than complete.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from herd.backends.upstream import UpstreamError

DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "content_filter": "stop"}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _error_text(err: Any) -> str:
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err)


@dataclass(slots=True)
class _Turn:
    """What one generation has produced so far (the decoder's state)."""

    kind: str
    model: str
    started: float
    first: float | None = None
    last: float | None = None
    finish: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    tools: dict[int, dict[str, Any]] = field(default_factory=dict)

    def chunk(
        self, content: str, thinking: str = "", tool_calls: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        now = trio.current_time()
        self.first = self.first if self.first is not None else now
        self.last = now
        out: dict[str, Any] = {"model": self.model, "created_at": _now_iso()}
        if self.kind == "chat":
            msg: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                msg["thinking"] = thinking
            if tool_calls:
                msg["tool_calls"] = tool_calls
            out["message"] = msg
        else:
            out["response"] = content
            if thinking:
                out["thinking"] = thinking
        out["done"] = False
        return out

    def add_tool_deltas(self, deltas: list[Any]) -> None:
        for pos, delta in enumerate(deltas):
            if not isinstance(delta, dict):
                continue
            index = delta.get("index", pos) if isinstance(delta.get("index", pos), int) else pos
            slot = self.tools.setdefault(index, {"name": "", "arguments": ""})
            fn = delta.get("function") or {}
            if fn.get("name"):
                slot["name"] += str(fn["name"])
            if fn.get("arguments") is not None:
                args = fn["arguments"]
                slot["arguments"] += args if isinstance(args, str) else json.dumps(args)

    def tool_calls(self) -> list[dict[str, Any]]:
        calls = []
        for index in sorted(self.tools):
            slot = self.tools[index]
            try:
                args = json.loads(slot["arguments"]) if slot["arguments"] else {}
            except ValueError:
                args = {"_raw": slot["arguments"]}  # a model that emitted broken JSON: keep its text
            calls.append({"function": {"name": slot["name"], "arguments": args}})
        return calls

    def final(self) -> dict[str, Any]:
        now = trio.current_time()
        out: dict[str, Any] = {"model": self.model, "created_at": _now_iso()}
        if self.kind == "chat":
            out["message"] = {"role": "assistant", "content": ""}
        else:
            out["response"] = ""
        out["done"] = True
        out["done_reason"] = DONE_REASONS.get(self.finish or "stop", "stop")
        out |= counts(self.usage, self.timings, self.started, self.first, self.last, now)
        return out


def counts(
    usage: dict[str, Any],
    timings: dict[str, Any],
    started: float,
    first: float | None,
    last: float | None,
    now: float,
) -> dict[str, int]:
    """Ollama's count and duration fields from an OpenAI answer: counts from llama.cpp's `timings` or `usage`, durations from `timings` or measured here (prompt: until the first token; eval: first to last
    token; total: the whole exchange). What is not known is left out."""
    out = {"total_duration": int((now - started) * 1e9)}
    t, u = timings, usage
    # llama.cpp's `timings.prompt_n` counts the prompt tokens it evaluated (not those its cache held), which is
    # what Ollama's `prompt_eval_count` means and what `prompt_ms` timed; `usage.prompt_tokens` counts them all
    prompt_n = t["prompt_n"] if isinstance(t.get("prompt_n"), int) else u.get("prompt_tokens")
    eval_n = u.get("completion_tokens", t.get("predicted_n"))
    if isinstance(prompt_n, int):
        out["prompt_eval_count"] = prompt_n
    if isinstance(t.get("prompt_ms"), int | float):
        out["prompt_eval_duration"] = int(t["prompt_ms"] * 1e6)
    elif first is not None:
        out["prompt_eval_duration"] = int((first - started) * 1e9)
    if isinstance(eval_n, int):
        out["eval_count"] = eval_n
    if isinstance(t.get("predicted_ms"), int | float):
        out["eval_duration"] = int(t["predicted_ms"] * 1e6)
    elif first is not None and last is not None:
        out["eval_duration"] = int((last - first) * 1e9)
    return out


def _delta_parts(choice: dict[str, Any], key: str) -> tuple[str, str]:
    part = choice.get(key) or {}
    if key == "text":
        return str(choice.get("text") or ""), ""
    content = part.get("content") if isinstance(part, dict) else None
    thinking = (part.get("reasoning_content") or part.get("reasoning")) if isinstance(part, dict) else None
    return (content if isinstance(content, str) else ""), (thinking if isinstance(thinking, str) else "")


def _absorb(turn: _Turn, obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    """Fold one OpenAI object (a stream chunk or a whole answer) into `turn`; the Ollama chunk to emit, if any."""
    if isinstance(obj.get("usage"), dict):
        turn.usage = obj["usage"]
    if isinstance(obj.get("timings"), dict):
        turn.timings = obj["timings"]
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    if choice.get("finish_reason"):
        turn.finish = str(choice["finish_reason"])
    part = choice.get(key)
    if isinstance(part, dict) and isinstance(part.get("tool_calls"), list):
        turn.add_tool_deltas(part["tool_calls"])
    content, thinking = _delta_parts(choice, key)
    if content or thinking:
        return turn.chunk(content, thinking)
    return None


def _decode(body: bytes) -> Any:
    """A whole JSON answer; a node that sends something else failed (retried on another node if nothing was
    sent to the caller yet)."""
    try:
        return json.loads(body)
    except ValueError as exc:
        raise UpstreamError("protocol", f"the node's answer is not JSON: {body[:80]!r}") from exc


def _sse_data(buf: bytes) -> tuple[list[str], bytes]:
    """The `data:` payloads of the complete SSE lines in `buf`, and the unfinished rest."""
    cut = buf.rfind(b"\n")
    if cut < 0:
        return [], buf
    events = [
        line[5:].strip().decode("utf-8", "replace")
        for line in buf[:cut].split(b"\n")
        if line.startswith(b"data:")
    ]
    return events, buf[cut + 1 :]


async def to_ollama(
    chunks: AsyncIterator[bytes],
    *,
    kind: str,
    model: str,
    stream: bool,
    text_api: bool = False,
    started: float | None = None,
) -> AsyncIterator[bytes]:
    """Translate an OpenAI backend body into Ollama NDJSON (see the module docstring). `kind` is the Ollama
    shape to answer in; `text_api` means the backend answered `/v1/completions` (`choices[].text`)."""
    turn = _Turn(kind, model, trio.current_time() if started is None else started)
    key = "text" if text_api else ("delta" if stream else "message")
    if kind in ("embed", "embeddings"):
        body = b"".join([c async for c in chunks])
        yield _line(_embeddings(_decode(body), turn, kind))
        return
    if not stream:
        body = b"".join([c async for c in chunks])
        obj = _decode(body)
        if isinstance(obj, dict) and "error" in obj:
            yield _line({"error": _error_text(obj["error"])})
            return
        first = _absorb(turn, obj if isinstance(obj, dict) else {}, key)
        turn.first = turn.last = None  # one answer: the phases cannot be told apart here, only the total
        final = turn.final()
        if first is not None:  # one object holding both the text and the counts, as Ollama answers
            for k in ("message", "response", "thinking"):
                if k in first:
                    final[k] = first[k]
        if turn.tools:
            final.setdefault("message", {"role": "assistant", "content": ""})["tool_calls"] = (
                turn.tool_calls()
            )
        yield _line(final)
        return
    complete = False
    buf = b""
    async for chunk in chunks:  # no nested generator: nothing is left for the GC when the caller stops early
        events, buf = _sse_data(buf + chunk)
        for data in events:
            if data == "[DONE]":
                complete = True
                break
            try:
                obj = json.loads(data)
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            if "error" in obj:
                yield _line({"error": _error_text(obj["error"])})
                return
            out = _absorb(turn, obj, key)
            if out is not None:
                yield _line(out)
        if complete:
            async for _ in chunks:  # read to the end so the connection can be reused
                pass
            break
    if not complete and turn.finish is None:
        return  # cut: no final chunk, the relay reports the stream as failed
    if turn.tools:
        yield _line(turn.chunk("", tool_calls=turn.tool_calls()))
    yield _line(turn.final())


def _embeddings(obj: Any, turn: _Turn, kind: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        message = _error_text(obj.get("error")) if isinstance(obj, dict) and "error" in obj else "bad answer"
        return {"error": f"embeddings backend: {message}"}
    rows = sorted((d for d in obj["data"] if isinstance(d, dict)), key=lambda d: int(d.get("index", 0)))
    vectors = [d.get("embedding") for d in rows]
    if kind == "embeddings":
        return {"embedding": vectors[0] if vectors else []}
    out: dict[str, Any] = {"model": turn.model, "embeddings": vectors}
    out["total_duration"] = int((trio.current_time() - turn.started) * 1e9)
    usage = obj.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        out["prompt_eval_count"] = usage["prompt_tokens"]
    return out

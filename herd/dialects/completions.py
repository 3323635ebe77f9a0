"""OpenAI legacy completions (`POST /v1/completions`) ⇄ Ollama `/api/generate` (pure).

Sits on both ends of the completions flow in `herd.inference.responses`: `request_to_ollama` validates the
OpenAI body and builds the Ollama generate body (always streamed upstream), as Ollama's own OpenAI layer does
(`prompt` a string or a list of one string, `suffix`, `max_tokens` → `num_predict`, `stop`, `temperature`,
`top_p`, `seed`, penalties). What Ollama cannot do is a clear 400: `echo`, `n`/`best_of` > 1, `logprobs`,
token-id prompts. Replies: `CompletionStreamEncoder` (SSE `text_completion` chunks, an optional usage chunk,
`data: [DONE]`) and `CompletionAccumulator` (one `text_completion` object). OpenAI nodes get the original body
(the native path), so there the node's own answer is relayed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from herd.dialects.checks import fail, is_bool, is_dict, is_int, optional, required_str, wrong_type
from herd.dialects.openai_request import sampling_options
from herd.dialects.openai_stream import dumps, error_event, finish_reason, usage


@dataclass(frozen=True, slots=True)
class CompletionOptions:
    model: str
    stream: bool
    include_usage: bool


def new_completion_id() -> str:
    return "cmpl-" + secrets.token_hex(12)


def _prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1:
            fail(
                "prompt",
                "'prompt' must be a string or a list of exactly one string (batches are not supported)",
            )
        prompt = prompt[0]
    if prompt is None:
        fail("prompt", "'prompt' is required")
    if not isinstance(prompt, str):
        wrong_type("prompt", "a string (token-id prompts are not supported)", prompt)
    return prompt


def _refuse(body: dict[str, Any]) -> None:
    if optional(body, "echo", is_bool, "a boolean") is True:
        fail("echo", "'echo' is not supported: the nodes return only the generated text")
    for key in ("n", "best_of"):
        value = optional(body, key, is_int, "an integer")
        if value is not None and value != 1:
            fail(key, f"'{key}' other than 1 is not supported")
    logprobs = optional(body, "logprobs", is_int, "an integer")
    if logprobs:
        fail("logprobs", "'logprobs' is not supported on /v1/completions")


def request_to_ollama(body: dict[str, Any]) -> tuple[dict[str, Any], CompletionOptions]:
    """Validate a completions request and build the Ollama `/api/generate` body."""
    model = required_str(body, "model")
    stream = optional(body, "stream", is_bool, "a boolean") is True
    stream_options = optional(body, "stream_options", is_dict, "an object") or {}
    include_usage = optional(stream_options, "include_usage", is_bool, "a boolean", "stream_options") is True
    _refuse(body)
    out: dict[str, Any] = {"model": model, "prompt": _prompt(body), "stream": True}
    suffix = optional(body, "suffix", lambda v: isinstance(v, str), "a string")
    if suffix:
        out["suffix"] = suffix
    options = sampling_options(body, ("max_tokens",))
    if options:
        out["options"] = options
    return out, CompletionOptions(model, stream, include_usage)


class _Reader:
    def __init__(self, model: str, completion_id: str, created: int) -> None:
        self.head = {"id": completion_id, "object": "text_completion", "created": created, "model": model}
        self.final: dict[str, Any] = {}

    def _text(self, chunk: dict[str, Any]) -> str:
        if chunk.get("done") is True:
            self.final = chunk
        text = chunk.get("response")
        return text if isinstance(text, str) else ""

    def _reason(self) -> str:
        return finish_reason(self.final.get("done_reason"), False)

    def _usage(self) -> dict[str, int]:
        counts = [self.final.get(k) for k in ("prompt_eval_count", "eval_count")]
        prompt, completion = (c if isinstance(c, int) and c >= 0 else 0 for c in counts)
        return usage(prompt, completion)


class CompletionStreamEncoder(_Reader):
    def __init__(self, model: str, completion_id: str, created: int, include_usage: bool) -> None:
        super().__init__(model, completion_id, created)
        self.include_usage = include_usage

    def _event(self, text: str, reason: str | None) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": reason}
        return b"data: " + dumps({**self.head, "choices": [choice]}) + b"\n\n"

    def encode(self, chunk: dict[str, Any]) -> bytes:
        text = self._text(chunk)
        out = self._event(text, None) if text else b""
        if self.final:
            out += self._event("", self._reason())
        return out

    def finish(self) -> bytes:
        out = b""
        if self.include_usage:
            out = b"data: " + dumps({**self.head, "choices": [], "usage": self._usage()}) + b"\n\n"
        return out + b"data: [DONE]\n\n"

    def error_event(self, message: str) -> bytes:
        return error_event(message)


class CompletionAccumulator(_Reader):
    def __init__(self, model: str, completion_id: str, created: int) -> None:
        super().__init__(model, completion_id, created)
        self.parts: list[str] = []

    def add(self, chunk: dict[str, Any]) -> None:
        self.parts.append(self._text(chunk))

    def result(self) -> dict[str, Any]:
        choice = {"text": "".join(self.parts), "index": 0, "logprobs": None, "finish_reason": self._reason()}
        return {**self.head, "choices": [choice], "usage": self._usage()}

"""Ollama-form requests → OpenAI-compatible backend requests (pure), for nodes whose agent runs
`--backend openai` (llama.cpp's `llama-server`, vLLM, LM Studio).

Every caller dialect reaches routing as an Ollama-form body (`/api/chat`, `/api/generate`, `/api/embed`,
`/api/embeddings`); `herd.backends.kinds` calls `translate` when the chosen node speaks OpenAI, and
`herd.backends.openai_response` turns the answer back into Ollama chunks. Only what the backend can honour is
sent: load-time options (`num_ctx`, `num_gpu`, ...) have no OpenAI equivalent and are dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Ollama option -> OpenAI (or llama.cpp / vLLM extension) field with the same meaning.
OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "seed": "seed",
    "stop": "stop",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "repeat_penalty": "repeat_penalty",
}
IMAGE_MAGIC = (("iVBOR", "image/png"), ("/9j/", "image/jpeg"), ("R0lG", "image/gif"), ("UklGR", "image/webp"))


@dataclass(frozen=True, slots=True)
class Translated:
    """What to send to the OpenAI-compatible node, and how its answer must be read back."""

    path: str  # /v1/chat/completions, /v1/completions or /v1/embeddings
    body: dict[str, Any]
    kind: str  # "chat", "generate", "embed" or "embeddings" (the Ollama shape to answer in)
    stream: bool


def data_url(image: str) -> str:
    """An Ollama image (bare base64) as the data URL OpenAI servers expect; data URLs pass unchanged."""
    if image.startswith("data:"):
        return image
    mime = next((m for prefix, m in IMAGE_MAGIC if image.startswith(prefix)), "image/png")
    return f"data:{mime};base64,{image}"


def _content(text: Any, images: Any) -> Any:
    if not isinstance(images, list) or not images:
        return text if isinstance(text, str) else ""
    parts: list[dict[str, Any]] = []
    if isinstance(text, str) and text:
        parts.append({"type": "text", "text": text})
    parts.extend({"type": "image_url", "image_url": {"url": data_url(str(img))}} for img in images)
    return parts


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama messages → OpenAI messages. Tool calls get ids, and tool results are matched to them by name
    (Ollama's `tool_name`), latest call first."""
    out: list[dict[str, Any]] = []
    pending: dict[str, list[str]] = {}  # tool name -> call ids not answered yet
    counter = 0
    for msg in messages:
        role = msg.get("role")
        item: dict[str, Any] = {"role": role, "content": _content(msg.get("content"), msg.get("images"))}
        if role == "assistant" and isinstance(msg.get("tool_calls"), list):
            calls = []
            for call in msg["tool_calls"]:
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict):
                    continue
                counter += 1
                call_id = str(call.get("id") or f"call_{counter}")
                args = fn.get("arguments", {})
                calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": str(fn.get("name", "")),
                            "arguments": args if isinstance(args, str) else json.dumps(args),
                        },
                    }
                )
                pending.setdefault(str(fn.get("name", "")), []).append(call_id)
            if calls:
                item["tool_calls"] = calls
        elif role == "tool":
            name = str(msg.get("tool_name") or msg.get("name") or "")
            ids = pending.get(name) or next((v for v in pending.values() if v), None)
            item["tool_call_id"] = str(msg.get("tool_call_id") or (ids.pop(0) if ids else f"call_{name}"))
        out.append(item)
    return out


def _sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    options = body.get("options")
    if isinstance(options, dict):
        for src, dst in OPTIONS.items():
            if options.get(src) is not None:
                out[dst] = options[src]
        predict = options.get("num_predict")
        if isinstance(predict, int) and not isinstance(predict, bool) and predict > 0:
            out["max_tokens"] = predict
    fmt = body.get("format")
    if fmt == "json":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}


def _thinking(body: dict[str, Any], out: dict[str, Any]) -> None:
    """Ollama `think: false` → the chat template switch llama.cpp and vLLM honour (Qwen3-style templates)."""
    if body.get("think") is False:
        out["chat_template_kwargs"] = {"enable_thinking": False}


def _stream_fields(stream: bool, out: dict[str, Any]) -> None:
    out["stream"] = stream
    if stream:
        out["stream_options"] = {"include_usage": True}  # real token counts in the last chunk


def translate(path: str, body: dict[str, Any], model_id: str) -> Translated:
    """The OpenAI request for an Ollama-form `body` sent to `path`, addressed to the backend's `model_id`."""
    stream = body.get("stream") is not False
    if path == "/api/chat":
        out: dict[str, Any] = {"model": model_id, "messages": _messages(list(body.get("messages") or []))}
        if isinstance(body.get("tools"), list) and body["tools"]:
            out["tools"] = body["tools"]
        _sampling(body, out)
        _thinking(body, out)
        _stream_fields(stream, out)
        return Translated("/v1/chat/completions", out, "chat", stream)
    if path == "/api/generate":
        prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
        if body.get("raw") is True:
            out = {"model": model_id, "prompt": prompt}
            _sampling(body, out)
            _stream_fields(stream, out)
            return Translated("/v1/completions", out, "generate", stream)
        messages: list[dict[str, Any]] = []
        if isinstance(body.get("system"), str) and body["system"]:
            messages.append({"role": "system", "content": body["system"]})
        messages.append({"role": "user", "content": _content(prompt, body.get("images"))})
        out = {"model": model_id, "messages": messages}
        _sampling(body, out)
        _thinking(body, out)
        _stream_fields(stream, out)
        return Translated("/v1/chat/completions", out, "generate", stream)
    if path in ("/api/embed", "/api/embeddings"):
        if path == "/api/embed":
            raw = body.get("input")
            inputs = raw if isinstance(raw, list) else [raw if isinstance(raw, str) else ""]
        else:
            inputs = [body.get("prompt") if isinstance(body.get("prompt"), str) else ""]
        out = {"model": model_id, "input": inputs, "encoding_format": "float"}
        if isinstance(body.get("dimensions"), int):
            out["dimensions"] = body["dimensions"]
        return Translated("/v1/embeddings", out, path.removeprefix("/api/"), False)
    raise ValueError(f"no OpenAI equivalent for {path}")

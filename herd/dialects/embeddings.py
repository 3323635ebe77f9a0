"""Embeddings codecs (pure): Ollama's `/api/embed` and legacy `/api/embeddings` validated as they are forwarded,
and OpenAI's `/v1/embeddings` converted to `/api/embed` and back (float or base64 `encoding_format`, inputs kept
in order)."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

from herd.errors import BadRequest
from herd.validate import model_name


def _model(body: dict[str, Any]) -> str:
    return model_name(body.get("model"))


def _number(body: dict[str, Any], name: str) -> None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise BadRequest(f"'{name}' must be a positive integer", param=name)


def _texts(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return list(value)
    if isinstance(value, list) and value and all(isinstance(t, int | list) for t in value):
        raise BadRequest(f"'{name}' as token arrays is not supported; send text", param=name)
    raise BadRequest(f"'{name}' must be a string or a list of strings", param=name)


def validate_embed(body: dict[str, Any]) -> None:
    _model(body)
    _texts(body.get("input", ""), "input")
    if "truncate" in body and body["truncate"] is not None and not isinstance(body["truncate"], bool):
        raise BadRequest("'truncate' must be a boolean", param="truncate")
    _number(body, "dimensions")
    if body.get("options") is not None and not isinstance(body["options"], dict):
        raise BadRequest("'options' must be an object", param="options")


def validate_legacy(body: dict[str, Any]) -> None:
    _model(body)
    if not isinstance(body.get("prompt", ""), str):
        raise BadRequest("'prompt' must be a string", param="prompt")


@dataclass(frozen=True, slots=True)
class EmbedOptions:
    model: str
    base64: bool


def openai_request(body: dict[str, Any]) -> tuple[dict[str, Any], EmbedOptions]:
    model = _model(body)
    if "input" not in body:
        raise BadRequest("'input' is required", param="input")
    texts = _texts(body["input"], "input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    _number(body, "dimensions")
    out: dict[str, Any] = {"model": model, "input": texts}
    if body.get("dimensions") is not None:
        out["dimensions"] = body["dimensions"]
    return out, EmbedOptions(model, fmt == "base64")


def _encode(vector: list[float], as_base64: bool) -> list[float] | str:
    if not as_base64:
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def openai_response(ollama: dict[str, Any], opts: EmbedOptions) -> dict[str, Any]:
    vectors = ollama.get("embeddings") or []
    tokens = ollama.get("prompt_eval_count") or 0
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(v, opts.base64)}
            for i, v in enumerate(vectors)
        ],
        "model": opts.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }

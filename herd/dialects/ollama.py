"""Ollama's native dialect (the router's backend dialect): request parsing and validation, error bodies.

Sits at the front of the request flow: `herd.web` reads the raw body, `parse_body` decodes it (for every
dialect), `validate_chat`/`validate_generate`/`validate_show` reject malformed Ollama requests with a 400
before any node is chosen, and the unchanged bytes are forwarded. `error_body`/`error_line` render failures
the way Ollama does (`{"error": "..."}`), as a whole body or as the last NDJSON line of a cut stream.
Pure and synchronous: no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from herd.dialects.checks import (
    as_object,
    fail,
    is_bool,
    is_dict,
    is_int_list,
    is_list,
    is_number,
    is_str,
    is_str_list,
    json_type,
    optional,
    required_model,
    wrong_type,
)
from herd.errors import BadRequest
from herd.validate import json_values

CHAT_ROLES = ("system", "user", "assistant", "tool")
THINK_LEVELS = ("high", "medium", "low")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(raw: bytes | str) -> dict[str, Any]:
    """Decode a JSON request body that must be an object. Malformed input is a `BadRequest`."""
    if not raw or raw.isspace():
        raise BadRequest("missing request body: expected a JSON object")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON body: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadRequest("invalid JSON body: nested too deeply") from None
    except ValueError as exc:  # bad UTF-8, NaN/Infinity
        raise BadRequest(f"invalid JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {json_type(body)}")
    json_values(body)
    return body


def _is_think(value: Any) -> bool:
    return isinstance(value, bool) or value in THINK_LEVELS


def _is_format(value: Any) -> bool:
    return isinstance(value, str | dict)


def _is_keep_alive(value: Any) -> bool:
    return isinstance(value, str) or is_number(value)


def _check_common(body: dict[str, Any]) -> None:
    """Fields /api/chat and /api/generate share."""
    optional(body, "stream", is_bool, "a boolean")
    optional(body, "raw", is_bool, "a boolean")
    optional(body, "think", _is_think, 'a boolean or one of "high", "medium", "low"')
    optional(body, "options", is_dict, "an object")
    optional(body, "format", _is_format, 'a string (e.g. "json") or a JSON schema object')
    optional(body, "keep_alive", _is_keep_alive, 'a duration string (e.g. "5m") or a number of seconds')


def _check_message(message: Any, path: str) -> None:
    m = as_object(message, path)
    role = m.get("role")
    if role is None:
        fail(f"{path}.role", f"'{path}.role' is required")
    if not isinstance(role, str):
        wrong_type(f"{path}.role", "a string", role)
    if role not in CHAT_ROLES:
        fail(f"{path}.role", f"'{path}.role' must be one of {', '.join(CHAT_ROLES)}, got '{role}'")
    optional(m, "content", is_str, "a string", path)
    optional(m, "thinking", is_str, "a string", path)
    optional(m, "images", is_str_list, "an array of base64 strings", path)
    optional(m, "tool_name", is_str, "a string", path)
    calls = optional(m, "tool_calls", is_list, "an array", path)
    for j, call in enumerate(calls or []):
        as_object(call, f"{path}.tool_calls[{j}]")


def validate_chat(body: dict[str, Any]) -> None:
    """Check an Ollama `/api/chat` request; wrong types raise `BadRequest` with `param` = the field path."""
    required_model(body, "model")
    messages = optional(body, "messages", is_list, "an array")
    for i, message in enumerate(messages or []):
        _check_message(message, f"messages[{i}]")
    optional(body, "tools", is_list, "an array")
    _check_common(body)


def validate_generate(body: dict[str, Any]) -> None:
    """Check an Ollama `/api/generate` request; wrong types raise `BadRequest` with `param` set."""
    required_model(body, "model")
    for key in ("prompt", "suffix", "system", "template"):
        optional(body, key, is_str, "a string")
    optional(body, "images", is_str_list, "an array of base64 strings")
    optional(body, "context", is_int_list, "an array of integers")
    _check_common(body)


def validate_show(body: dict[str, Any]) -> str:
    """The model named by an `/api/show` request (`model`, or the legacy `name`)."""
    if body.get("model") is None and body.get("name") is not None:
        return required_model(body, "name")
    return required_model(body, "model")


def wants_stream(body: dict[str, Any]) -> bool:
    """Ollama streams unless the caller says `"stream": false` (absent or null means stream)."""
    return body.get("stream") is not False


def error_body(message: str) -> bytes:
    """A whole Ollama error response body: `{"error": "..."}`."""
    return json.dumps({"error": message}, ensure_ascii=False).encode("utf-8", "replace")


def error_line(message: str) -> bytes:
    """The NDJSON line that ends a stream that failed after its first byte."""
    return error_body(message) + b"\n"

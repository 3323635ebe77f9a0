"""Whole error responses in the caller's dialect, chosen from the request path: `/v1/messages` speaks
Anthropic (`{"type": "error", "error": {"type", "message"}}`), any other `/v1/...` OpenAI
(`{"error": {"message", "type", "param", "code"}}`), everything else Ollama (`{"error": "..."}`).

Pure: used by the Quart error handler (`herd.web.errors`), by the web edge's guard (`herd.web.guard`), which
answers before any route runs, and by the ASGI wrapper in `herd.web.server` for the last-resort 500 (an
exception that escaped Quart), so no error answer is ever empty.
"""

from __future__ import annotations

import json

from herd.errors import HerdError

# The error types Anthropic's API documents, by status (anything else is an `api_error`).
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def dialect_of(path: str) -> str:
    """ "anthropic", "openai" or "ollama": whose error shape a caller of `path` expects."""
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return "anthropic"
    if path.startswith("/v1/"):
        return "openai"
    return "ollama"


def error_payload(
    path: str, status: int, message: str, *, code: str, openai_type: str, param: str | None = None
) -> bytes:
    """The JSON body of an error answer for a request to `path` (ASCII: lone surrogates are escaped)."""
    payload: dict[str, object]
    dialect = dialect_of(path)
    if dialect == "anthropic":
        kind = ANTHROPIC_TYPES.get(status, "api_error")
        payload = {"type": "error", "error": {"type": kind, "message": message}}
    elif dialect == "openai":
        payload = {"error": {"message": message, "type": openai_type, "param": param, "code": code}}
    else:
        payload = {"error": message}
    return json.dumps(payload).encode()


def herd_error_body(path: str, exc: HerdError) -> bytes:
    """The JSON body for `exc` as the caller of `path` expects it."""
    return error_payload(
        path, exc.status, exc.message, code=exc.code, openai_type=exc.openai_type, param=exc.param
    )

"""Error bodies in the caller's dialect, chosen by the request path (pure). `herd.web.errors` renders every
handled error with it, and the ASGI wrapper in `herd.web.server` renders the last-resort 500 (an exception
that escaped Quart) with it too, so no error answer is ever empty.

- `/v1/messages` (Anthropic): `{"type": "error", "error": {"type", "message"}}`
- other `/v1/...` (OpenAI): `{"error": {"message", "type", "param", "code"}}`
- everything else (Ollama and herd's own routes): `{"error": "..."}`
"""

from __future__ import annotations

import json

ANTHROPIC_KINDS = {400: "invalid_request_error", 404: "not_found_error", 413: "request_too_large"}
ANTHROPIC_KINDS |= {429: "rate_limit_error"}


def error_payload(
    path: str, status: int, message: str, *, code: str, openai_type: str, param: str | None = None
) -> bytes:
    """The JSON body of an error answer for a request to `path` (ASCII: lone surrogates are escaped)."""
    payload: dict[str, object]
    if path == "/v1/messages":
        kind = ANTHROPIC_KINDS.get(status, "api_error")
        payload = {"type": "error", "error": {"type": kind, "message": message}}
    elif path.startswith("/v1/"):
        payload = {"error": {"message": message, "type": openai_type, "param": param, "code": code}}
    else:
        payload = {"error": message}
    return json.dumps(payload).encode()

"""The one error handler: renders any `HerdError` (and Quart/werkzeug HTTP errors) in the caller's dialect.

The shape comes from `herd.dialects.errors` (Anthropic for `/v1/messages`, OpenAI for other `/v1/...` routes,
Ollama's `{"error": "..."}` for everything else). Unexpected exceptions are logged and become a 500 in the same shapes, never HTML.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from quart import Response, request
from werkzeug.exceptions import HTTPException

from herd.dialects.errors import error_payload
from herd.errors import HerdError
from herd.metrics import Metrics
from herd.routing.record import record_of

log = logging.getLogger("herd.web")

_HTTP_CODES = {
    400: ("invalid_request", "invalid_request_error"),
    404: ("not_found", "invalid_request_error"),
    405: ("method_not_allowed", "invalid_request_error"),
    408: ("request_timeout", "invalid_request_error"),
    413: ("payload_too_large", "invalid_request_error"),
}


def render(
    status: int,
    message: str,
    *,
    code: str,
    openai_type: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = error_payload(request.path, status, message, code=code, openai_type=openai_type, param=param)
    return Response(body, status=status, content_type="application/json; charset=utf-8", headers=headers)


async def on_herd_error(exc: HerdError) -> Response:
    rec = record_of(request.scope)
    if rec is not None:
        rec.fail(exc.status, exc.message)
    return render(
        exc.status,
        exc.message,
        code=exc.code,
        openai_type=exc.openai_type,
        param=exc.param,
        headers=exc.headers(),
    )


async def on_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code, kind = _HTTP_CODES.get(status, ("http_error", "invalid_request_error"))
    message = exc.description or exc.name
    if status == 404:
        message = f"{request.method} {request.path}: no such route"
    elif status == 405:
        message = f"method {request.method} is not allowed on {request.path}"
    return render(status, message, code=code, openai_type=kind)


def unexpected_handler(metrics: Metrics) -> Callable[[Exception], Awaitable[Response]]:
    """The handler for any other exception: logged, counted (`herd_unexpected_errors_total`), and answered
    with a 500 in the caller's dialect."""

    async def on_unexpected(exc: Exception) -> Response:
        metrics.count_unexpected()
        rec = record_of(request.scope)
        if rec is not None:
            rec.fail(500, f"internal error: {type(exc).__name__}")
        log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        return render(
            500, f"internal error: {type(exc).__name__}", code="internal_error", openai_type="server_error"
        )

    return on_unexpected

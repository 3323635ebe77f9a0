"""The one error tree. Every failure a client can see is a `HerdError` that knows its HTTP status,
a stable machine code and an OpenAI error type; `herd.web.errors` renders it in the caller's dialect.
"""

from __future__ import annotations


class HerdError(Exception):
    """Base of every error herd reports to a client."""

    status: int = 500
    code: str = "internal_error"
    openai_type: str = "server_error"

    def __init__(self, message: str, *, param: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after)))}


class BadRequest(HerdError):
    """The request body or parameters are malformed."""

    status = 400
    code = "invalid_request"
    openai_type = "invalid_request_error"


class NotFound(HerdError):
    status = 404
    code = "not_found"
    openai_type = "invalid_request_error"


class ModelNotFound(NotFound):
    """No node in the fleet has this model."""

    code = "model_not_found"


class MethodNotAllowed(HerdError):
    status = 405
    code = "method_not_allowed"
    openai_type = "invalid_request_error"


class PayloadTooLarge(HerdError):
    status = 413
    code = "payload_too_large"
    openai_type = "invalid_request_error"


class NoNodeAvailable(HerdError):
    """The model exists in the fleet but no node that has it can serve now."""

    status = 503
    code = "no_node_available"
    openai_type = "server_error"


class UpstreamFailed(HerdError):
    """Every node tried failed before sending a byte."""

    status = 502
    code = "upstream_failed"
    openai_type = "server_error"


class UpstreamStatus(HerdError):
    """A backend answered with an error status that is the caller's concern (e.g. 400 bad option)."""

    openai_type = "invalid_request_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = "upstream_error"
        if status >= 500:
            self.openai_type = "server_error"


class FleetBusy(HerdError):
    """Every node that could serve is full and the request waited as long as it may."""

    status = 429
    code = "fleet_busy"
    openai_type = "rate_limit_error"


class FleetStarting(NoNodeAvailable):
    """The router restarted and the nodes that served this model have not reported again yet."""

    code = "fleet_starting"

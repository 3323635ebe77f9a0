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


class RequestTimeout(HerdError):
    """The request body did not arrive within `--body-timeout`."""

    status = 408
    code = "request_timeout"
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
        if gateway_status(status) != status:
            message = f"the node answered HTTP {status}: {message}"
        super().__init__(message)
        self.node_status = status
        self.status = gateway_status(status)
        self.code = "upstream_error"
        if status >= 500:
            self.openai_type = "server_error"


def gateway_status(status: int) -> int:
    """The status herd answers for a node's: a node's own failure (a 5xx other than 503/504) is herd's 502, so
    a 500 from herd always means herd itself failed."""
    return 502 if status >= 500 and status not in (503, 504) else status


class FleetBusy(HerdError):
    """Every node that could serve is full and the request waited as long as it may."""

    status = 429
    code = "fleet_busy"
    openai_type = "rate_limit_error"


class FleetUnauthorized(HerdError):
    """A heartbeat or agent command without a valid fleet-token signature (missing, wrong, stale, replayed)."""

    status = 401
    code = "fleet_unauthorized"
    openai_type = "authentication_error"


class HeartbeatRefused(HerdError):
    """A heartbeat advertising a URL that is not on the address it came from."""

    status = 403
    code = "heartbeat_refused"
    openai_type = "permission_error"


class NodeIdTaken(HerdError):
    """A heartbeat for a node id that another address holds while it is online."""

    status = 409
    code = "node_id_taken"
    openai_type = "invalid_request_error"


class Unauthorized(HerdError):
    """A caller without a valid API key (or admin key) on a route that needs one."""

    status = 401
    code = "invalid_api_key"
    openai_type = "invalid_request_error"


class Forbidden(HerdError):
    """A request the web edge refuses whatever its body: a disallowed browser origin or Host name."""

    status = 403
    code = "forbidden"
    openai_type = "invalid_request_error"


class RateLimited(HerdError):
    """An API key over its `rpm` or `concurrent` limit."""

    status = 429
    code = "rate_limit_exceeded"
    openai_type = "requests"


class FleetStarting(NoNodeAvailable):
    """The router restarted and the nodes that served this model have not reported again yet."""

    code = "fleet_starting"

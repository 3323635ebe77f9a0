"""What the web edge decides about one request before any route runs, from its method, path and headers.

In order:
1. Host (only when listening on loopback): a name a DNS-rebinding page could use → 403.
2. Origin: a browser page from a disallowed origin → 403, whatever the method or content type; an allowed one
   gets its `OPTIONS` preflight answered here and CORS headers on every response.
3. Body: a `Content-Length` over the limit → 413 before a byte is read (the guard counts chunked bodies).
4. Admin routes (everything that changes the fleet, see `access_of`): with an admin key, the key
   (`X-Herd-Admin-Key` or `Authorization: Bearer`); without one, no cross-origin browser request at all (an
   `Origin` other than the router's own, or `Sec-Fetch-Site: cross-site`) → 403. With an admin key, the
   dashboard's data (`GET /fleet/...`) needs it too. Heartbeats are never taken from another site's page.
5. API routes (`/v1/...`, `/api/...`) while API keys exist: a valid key → its name is the request's app; none or
   a wrong one → 401 in the caller's dialect. Rate limits are counted by the guard afterwards.

Pure: facts in, a `Verdict` out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from herd.errors import Forbidden, HerdError, PayloadTooLarge, Unauthorized
from herd.guard.keys import ApiKey, Keyring, Secret, presented_key
from herd.guard.origins import OriginPolicy, allowed_host, same_origin

# Ollama routes that manage models (herd serves pull, delete and copy; the others are refused as unknown
# routes today, and stay admin-only if they are ever added).
MANAGE_PATHS = frozenset({"/api/pull", "/api/delete", "/api/copy", "/api/create", "/api/push"})
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Open even while API keys exist: what health checks and version probes call.
OPEN_API_PATHS = frozenset({"/api/version"})


class Access(Enum):
    OPEN = "open"  # "/", metrics, the dashboard page and its static files
    AGENT = (
        "agent"  # heartbeats: node agents only, never a web page (the fleet token is checked by the route)
    )
    API = "api"  # inference and model listings: an API key when keys exist
    ADMIN = "admin"  # changes the fleet: the admin key, or never cross-origin
    FLEET_READ = "fleet_read"  # the dashboard's data: the admin key when one is set


def access_of(method: str, path: str) -> Access:
    method = method.upper()
    if method in MUTATING and (
        path.startswith("/fleet/") or path in MANAGE_PATHS or path.startswith("/api/blobs/")
    ):
        return Access.ADMIN
    if path.startswith("/fleet/"):
        return Access.FLEET_READ
    if path == "/heartbeat":
        return Access.AGENT
    if (path.startswith("/v1/") or path.startswith("/api/")) and path not in OPEN_API_PATHS:
        return Access.API
    return Access.OPEN


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything the rules need but the keys, built once from the config (the keyring, swapped on reload,
    comes beside it)."""

    origins: OriginPolicy
    check_host: bool  # listening on loopback: DNS-rebinding defence on
    own_names: tuple[str, ...]  # this machine's host name(s), accepted as Host
    max_body: int
    admin_key: Secret | None


@dataclass(frozen=True, slots=True)
class Facts:
    """The parts of a request the rules look at (header names lower-case)."""

    method: str
    path: str
    headers: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass(frozen=True, slots=True)
class Verdict:
    error: HerdError | None = None
    preflight: bool = False  # answer 204 with the preflight headers
    cors_origin: str | None = None  # an allowed cross-origin page: add CORS headers for it
    key: ApiKey | None = None  # the caller's API key (its name is the app)


def decide(facts: Facts, policy: Policy, keyring: Keyring) -> Verdict:
    host = facts.get("host")
    if policy.check_host and not allowed_host(host, policy.own_names):
        return Verdict(Forbidden(f"host '{(host or '')[:100]}' is not allowed on a loopback-only router"))
    origin = facts.get("origin")
    own = origin is not None and same_origin(origin, host)
    cors = origin if origin is not None and not own else None
    if cors is not None and not policy.origins.allows(cors):
        return Verdict(
            Forbidden(f"origin '{cors[:200]}' is not allowed (add it with --origins or FLEET_ORIGINS)")
        )
    if facts.method.upper() == "OPTIONS" and cors is not None and facts.get("access-control-request-method"):
        return Verdict(preflight=True, cors_origin=cors)
    refuse = _refusal(facts, policy, keyring, cross_origin=cors is not None)
    if isinstance(refuse, HerdError):
        return Verdict(refuse, cors_origin=cors)
    return Verdict(cors_origin=cors, key=refuse)


def _refusal(
    facts: Facts, policy: Policy, keyring: Keyring, *, cross_origin: bool
) -> HerdError | ApiKey | None:
    """The error that stops the request, or the caller's API key (None: no key needed)."""
    length = facts.get("content-length")
    if length is not None and (not length.strip().isdigit() or int(length) > policy.max_body):
        return PayloadTooLarge(f"request body over the limit of {policy.max_body} bytes (--max-body)")
    access = access_of(facts.method, facts.path)
    auth = facts.get("authorization")
    if access in (Access.ADMIN, Access.FLEET_READ) and policy.admin_key is not None:
        if not (
            policy.admin_key.matches(facts.get("x-herd-admin-key"))
            or policy.admin_key.matches(presented_key(auth, None))
        ):
            return Unauthorized("this route needs the admin key (X-Herd-Admin-Key or Authorization: Bearer)")
        return None
    from_page = cross_origin or facts.get("sec-fetch-site") == "cross-site"
    if access is Access.ADMIN and from_page:
        return Forbidden("fleet changes are refused from other sites' pages (set --admin-key to allow them)")
    if access is Access.AGENT and from_page:
        return Forbidden("heartbeats come from node agents, never from a web page")
    if access is not Access.API or not keyring:
        return None
    presented = presented_key(auth, facts.get("x-api-key"))
    key = keyring.match(presented)
    if key is not None:
        return key
    if policy.admin_key is not None and policy.admin_key.matches(presented):
        return None  # the admin may call everything
    if presented is None:
        return Unauthorized(
            "an API key is required: send 'Authorization: Bearer <key>' (or 'x-api-key: <key>')"
        )
    return Unauthorized("invalid API key")

"""The fleet token: HMAC-SHA256 signatures on heartbeats (agent → router) and agent commands (router → agent's
command server), pure functions plus a bounded nonce cache. `herd.node.agent` and `herd.routing.media` sign;
`herd.web.fleet_api` and `herd.node.guard` verify, before the body is parsed.

Wire format: three headers on the request,

    X-Herd-Timestamp: 1767225600          (Unix seconds of the sender's clock)
    X-Herd-Nonce:     9f2c...             (32 hex characters, random per request)
    X-Herd-Signature: 5d1a...             (hex HMAC-SHA256 with the token as key over the message below)

    message = "herd-fleet-v1\\n" METHOD "\\n" PATH "\\n" TIMESTAMP "\\n" NONCE "\\n" hex(sha256(BODY))

PATH is the request target (path and query). A request is refused (401, `FleetUnauthorized`) when a header is
missing, the signature differs (compared with `hmac.compare_digest`), the timestamp is more than `WINDOW`
seconds from the receiver's clock either way, or the nonce was already seen inside the window. Nonces are
remembered only for signatures that verified, so only holders of the token can fill the cache; when it is full
(`MAX_NONCES`) further requests are refused rather than forgetting a nonce that could then be replayed.

The fleet id that the router advertises over mDNS is derived from the token (`fleet_id`), so agents that hold
a token only join the router that holds the same one.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import secrets
from typing import Protocol

from herd.errors import FleetUnauthorized

TIMESTAMP = "X-Herd-Timestamp"
NONCE = "X-Herd-Nonce"
SIGNATURE = "X-Herd-Signature"
WINDOW = 60.0
MAX_NONCES = 100_000
DEFAULT_FLEET_ID = "herd"


class HeaderLookup(Protocol):
    """Request headers, looked up case-insensitively (Quart's and werkzeug's `Headers`, or a plain dict)."""

    def get(self, key: str) -> str | None: ...


def fleet_id(token: str) -> str:
    """The public id of the fleet a token belongs to (reveals nothing usable about the token)."""
    return hashlib.sha256(("herd-fleet-id:" + token).encode()).hexdigest()[:12]


def _message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join(("herd-fleet-v1", method.upper(), path, timestamp, nonce, digest)).encode()


def signature(token: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac.new(
        token.encode(), _message(method, path, timestamp, nonce, body), hashlib.sha256
    ).hexdigest()


def sign(
    token: str, method: str, path: str, body: bytes, now: float, nonce: str | None = None
) -> dict[str, str]:
    """The headers that authenticate this request."""
    ts = str(int(now))
    nonce = nonce or secrets.token_hex(16)
    return {TIMESTAMP: ts, NONCE: nonce, SIGNATURE: signature(token, method, path, ts, nonce, body)}


class NonceCache:
    """Nonces seen until their timestamp leaves the window; bounded."""

    def __init__(self, limit: int = MAX_NONCES) -> None:
        self.limit = limit
        self._expiry: list[tuple[float, str]] = []
        self._seen: set[str] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, nonce: str, expires: float, now: float) -> str | None:
        """Remember `nonce` until `expires`; the reason to refuse, or None."""
        while self._expiry and self._expiry[0][0] < now:
            self._seen.discard(heapq.heappop(self._expiry)[1])
        if nonce in self._seen:
            return "replayed request (nonce already seen)"
        if len(self._seen) >= self.limit:
            return "too many signed requests in the last minute"
        self._seen.add(nonce)
        heapq.heappush(self._expiry, (expires, nonce))
        return None


class Verifier:
    """Checks signed requests for one token; keeps the nonces it accepted."""

    def __init__(self, token: str, window: float = WINDOW, nonces: NonceCache | None = None) -> None:
        self.token = token
        self.window = window
        self.nonces = nonces or NonceCache()

    def precheck(self, headers: HeaderLookup, now: float) -> None:
        """What can be refused before the body is read: missing, malformed or stale signature headers."""
        self._fresh(headers, now)

    def check(self, method: str, path: str, body: bytes, headers: HeaderLookup, now: float) -> None:
        """Raise `FleetUnauthorized` unless the request carries a fresh, valid, unseen signature."""
        ts, nonce, sig, sent = self._fresh(headers, now)
        want = signature(self.token, method, path, ts, nonce, body)
        if not hmac.compare_digest(want.encode(), sig.encode("utf-8", "replace")):
            raise FleetUnauthorized(
                "wrong fleet-token signature (different token, or the request was altered)"
            )
        problem = self.nonces.add(nonce, sent + self.window, now)
        if problem is not None:
            raise FleetUnauthorized(problem)

    def _fresh(self, headers: HeaderLookup, now: float) -> tuple[str, str, str, int]:
        ts, nonce, sig = headers.get(TIMESTAMP), headers.get(NONCE), headers.get(SIGNATURE)
        if not ts or not nonce or not sig:
            raise FleetUnauthorized(
                f"missing fleet-token signature ({TIMESTAMP}, {NONCE}, {SIGNATURE}): this fleet needs "
                "--fleet-token on every agent"
            )
        if len(nonce) > 128 or len(sig) > 128 or len(ts) > 20:
            raise FleetUnauthorized("malformed fleet-token signature headers")
        try:
            sent = int(ts)
        except ValueError:
            raise FleetUnauthorized(f"{TIMESTAMP} must be Unix seconds") from None
        if abs(now - sent) > self.window:
            raise FleetUnauthorized(
                f"stale request: timestamp {sent} is {now - sent:+.0f} s from the receiver's clock "
                f"(allowed ±{self.window:g} s; check the clocks)"
            )
        return ts, nonce, sig, sent

"""The web edge's one guard: a plain ASGI layer in front of the whole app (every Quart route, and any raw-ASGI
fast path placed inside it), built by `herd.nursery.router`.

Per HTTP request it applies `herd.guard.rules.decide` (Host, Origin, body length, admin key, API key), then:
- answers refusals itself, in the caller's dialect (`herd.dialects.errors`), and allowed preflights with 204;
- counts the key's requests per minute and holds its `concurrent` slot for the whole response (429 with
  `Retry-After` over either);
- puts the key's name in the scope (`herd.reqscope.APP_KEY`), where the request record picks it up as the app;
- counts the body as it streams in and answers 413 the moment it passes `--max-body` (the app sees a
  disconnect and is cancelled), so an oversize chunked body is never buffered;
- adds CORS headers to every response for an allowed cross-origin page.
WebSocket handshakes get the same rules (a refusal closes before accept, so the server answers 403; the
dashboard's socket, open to all here, checks the admin key itself in its first message).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from herd.dialects.errors import herd_error_body
from herd.errors import HerdError, PayloadTooLarge
from herd.guard.keyfile import ApiKeys
from herd.guard.limits import InFlight, RateBook, over_concurrent, over_rpm
from herd.guard.origins import preflight_headers, response_headers
from herd.guard.rules import Facts, Policy, Verdict, decide
from herd.reqscope import APP_KEY

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _facts(scope: Scope) -> Facts:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        if name not in headers:  # the first of repeated headers counts
            headers[name] = raw_value.decode("latin-1")
    return Facts(method=scope.get("method", "GET"), path=scope.get("path", "/"), headers=headers)


def _encode(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1", "replace")) for k, v in pairs]


class Guard:
    def __init__(self, app: Any, policy: Policy, keys: ApiKeys) -> None:
        self.app = app
        self.policy = policy
        self.keys = keys
        self.rates = RateBook()
        self.in_flight = InFlight()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        verdict = decide(_facts(scope), self.policy, self.keys.ring)
        if verdict.error is not None:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
            return
        if verdict.key is not None:
            scope[APP_KEY] = verdict.key.name
        await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        facts = _facts(scope)
        verdict = decide(facts, self.policy, self.keys.ring)
        cors = _encode(response_headers(verdict.cors_origin)) if verdict.cors_origin else []
        if verdict.preflight and verdict.cors_origin is not None:
            requested = facts.get("access-control-request-headers")
            headers = _encode(preflight_headers(verdict.cors_origin, requested))
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        error = verdict.error or self._over_limit(verdict)
        if error is not None:
            await _refuse(send, scope["path"], error, cors)
            return
        if verdict.key is None:
            await self._serve(scope, receive, send, cors)
            return
        scope[APP_KEY] = verdict.key.name
        with self.in_flight.hold(verdict.key.name):
            await self._serve(scope, receive, send, cors)

    def _over_limit(self, verdict: Verdict) -> HerdError | None:
        """429 for a key at its `concurrent` limit or over its `rpm` (only admitted requests are counted)."""
        key = verdict.key
        if key is None:
            return None
        if key.concurrent is not None and self.in_flight.full(key.name, key.concurrent):
            return over_concurrent(key.name, key.concurrent)
        if key.rpm is None:
            return None
        wait = self.rates.admit(key.name, key.rpm, trio.current_time())
        return None if wait is None else over_rpm(key.name, key.rpm, wait)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, cors: list[tuple[bytes, bytes]]
    ) -> None:
        if not cors and not _chunked(scope):
            # without Transfer-Encoding the body is Content-Length bytes (or none), which the rules checked
            # against --max-body and h11 enforces: nothing to count, nothing to add to the response
            await self.app(scope, receive, send)
            return
        body = _BodyLimit(self.policy.max_body)

        async def counted_receive() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request" and not body.answered:
                body.seen += len(message.get("body", b""))
                if body.seen > body.limit:
                    if not body.started:
                        body.answered = True
                        error = PayloadTooLarge(
                            f"request body over the limit of {body.limit} bytes (--max-body)"
                        )
                        await _refuse(send, scope["path"], error, cors)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if body.answered:
                return  # the guard already answered (413); the app is being cancelled
            if message["type"] == "http.response.start":
                body.started = True
                if cors:
                    message = {**message, "headers": [*message.get("headers", ()), *cors]}
            await send(message)

        await self.app(scope, counted_receive, guarded_send)


def _chunked(scope: Scope) -> bool:
    """The body comes with Transfer-Encoding (its length is known only as it arrives: count it)."""
    return any(name.lower() == b"transfer-encoding" for name, _ in scope.get("headers", ()))


class _BodyLimit:
    """How much of one request's body has come in, and whether the response has begun."""

    __slots__ = ("answered", "limit", "seen", "started")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self.started = False
        self.answered = False


async def _refuse(send: Send, path: str, error: HerdError, extra: list[tuple[bytes, bytes]]) -> None:
    body = herd_error_body(path, error)
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *_encode(list(error.headers().items())),
        *extra,
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

"""The agent's LAN proxy: serves a backend that listens on loopback only (an Ollama left on 127.0.0.1) to the
router through the agent's own port, for requests signed with the fleet token and nothing else.

Started by `herd.nursery.node` when `herd.node.lanpolicy.decide` says so; the agent then advertises this
server's address (on the route to the router) as its backend URL and sets `signed: true` in its heartbeats,
and the router signs every request to it (`herd.routing.nodeauth`). Per request, in order:

1. The signature headers (`herd.fleet.signing`) must be present and fresh, else 401 before the body is read.
2. The path must be the backend's API (`lanpolicy.refusal`), else 400/404/405.
3. The body is read whole (bounded: the signature covers its hash, so nothing reaches the backend before it
   is checked; the router holds the body whole anyway), then the signature is checked: 401 when wrong or
   replayed.
4. The request goes to the backend with its own Host and without hop-by-hop or signature headers; the response
   (status, headers, body) comes back chunk by chunk as the backend writes it, so NDJSON and SSE streams keep
   their pace. The client going away cancels the backend request, which closes its connection: the backend
   stops generating, as it would for a direct client.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from werkzeug.datastructures import Headers

from herd.errors import FleetUnauthorized
from herd.fleet.signing import Verifier
from herd.node.guard import MAX_BODY, Receive, Send
from herd.node.lanpolicy import refusal

log = logging.getLogger("herd.node.lanproxy")

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)


async def _answer(send: Send, status: int, message: str, kind: str = "authentication_error") -> None:
    body = json.dumps({"error": {"message": message, "type": kind}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BackendCut(Exception):
    """The backend broke off a response already under way; raised so the client's connection is cut too."""


def forwarded_headers(raw: list[tuple[bytes, bytes]], *, request: bool) -> list[tuple[bytes, bytes]]:
    """Headers passed on: without hop-by-hop ones, the request's content length (recomputed) and the fleet
    signature (it is for this hop only)."""
    out = []
    for name, value in raw:
        low = name.lower()
        if low in HOP_BY_HOP or (request and (low == b"content-length" or low.startswith(b"x-herd-"))):
            continue
        out.append((name, value))
    return out


class LanProxy:
    """Service: relays signed requests from `host:port` to `backend_url`. `url` is its loopback URL once bound
    (the agent advertises it like a backend URL)."""

    def __init__(
        self,
        backend_url: str,
        token: str,
        *,
        node_id: str,
        host: str = "0.0.0.0",
        port: int = 11437,
        max_body: int = MAX_BODY,
        connect_timeout: float = 5.0,
    ) -> None:
        self.backend_url = backend_url.rstrip("/")
        self.verifier = Verifier(token)
        self.node_id = node_id
        self.host = host
        self.port = port
        self.max_body = max_body
        self.connect_timeout = connect_timeout
        self.url: str | None = None
        self.relayed = 0
        self.refused = 0
        self._client: httpx.AsyncClient | None = None

    def _unauthorized(self, reason: str) -> str:
        return (
            f"the LAN proxy of herd node '{self.node_id}' only relays requests signed with the fleet token "
            f"(the router needs the same --fleet-token as this agent): {reason}"
        )

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]])
        try:
            self.verifier.precheck(headers, time.time())  # unsigned requests are refused unread
        except FleetUnauthorized as exc:
            self.refused += 1
            await _answer(send, 401, self._unauthorized(exc.message))
            return
        method = scope["method"]
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        problem = refusal(method, path)
        if problem is not None:
            self.refused += 1
            await _answer(send, problem[0], problem[1], "invalid_request_error")
            return
        body = await self._body(receive, send)
        if body is None:
            return
        target = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
        try:
            self.verifier.check(method, target, body, headers, time.time())
        except FleetUnauthorized as exc:
            self.refused += 1
            await _answer(send, 401, self._unauthorized(exc.message))
            return
        await self._relay(
            method, target, forwarded_headers(scope["headers"], request=True), body, receive, send
        )

    async def _body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole request body; None when the client left or the body is too large (answered)."""
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _answer(send, 413, "request body too large for the LAN proxy", "invalid_request_error")
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _relay(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        receive: Receive,
        send: Send,
    ) -> None:
        assert self._client is not None, "LanProxy.run() serves requests"
        self.relayed += 1
        async with trio.open_nursery() as nursery:

            async def client_gone() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()  # closes the backend connection: it stops generating

            nursery.start_soon(client_gone)
            started = False
            try:
                async with self._client.stream(
                    method, self.backend_url + target, headers=headers, content=body
                ) as resp:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": resp.status_code,
                            "headers": forwarded_headers(resp.headers.raw, request=False),
                        }
                    )
                    started = True
                    async for chunk in resp.aiter_raw():
                        if chunk:
                            await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            except httpx.TransportError as exc:
                # Before the response started: a 502 the router reports. After: hypercorn drops the
                # connection, so the router sees a cut stream rather than a short one that looks whole.
                log.warning("LAN proxy: backend %s failed: %s", self.backend_url, exc)
                if started:
                    raise BackendCut(str(exc)) from exc
                await _answer(send, 502, f"the backend behind the LAN proxy failed: {exc}", "server_error")
            nursery.cancel_scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        config = Config()
        config.bind = [f"{self.host}:{self.port}"]
        config.loglevel = "WARNING"
        config.accesslog = None
        config.include_date_header = config.include_server_header = False  # the backend's pass through
        timeout = httpx.Timeout(None, connect=self.connect_timeout)  # generation may pause for long
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=32)
        async with (
            httpx.AsyncClient(
                timeout=timeout,
                limits=limits,
                trust_env=False,
                headers={"accept-encoding": "identity"},  # bytes pass through untouched
            ) as client,
            trio.open_nursery() as nursery,
        ):
            self._client = client
            binds = await nursery.start(serve, self, config)
            self.url = binds[0].replace("0.0.0.0", "127.0.0.1")
            log.info("LAN proxy on %s for %s (fleet-token signed requests only)", binds[0], self.backend_url)
            task_status.started(self.url)

"""The one upstream HTTP client, behind a small interface so it can be swapped for a leaner one.

`herd.routing.proxy` opens `stream()` on a node for every proxied request and reads raw chunks; the web layer
uses `get()` for small JSON calls (`/api/show`). Failures come out as `UpstreamError` with a kind, so the
retry logic never sees an httpx type. Timeouts are the caller's cancel scopes; httpx's read timeout is off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import httpx

from herd.config import UpstreamConfig

JSON_HEADERS = {"content-type": "application/json", "accept": "*/*"}


class UpstreamError(Exception):
    """A backend could not be reached or broke the connection. `kind`: connect, protocol, read."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class UpstreamResponse(Protocol):
    status: int

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...


class Upstream(Protocol):
    def stream(
        self, method: str, url: str, body: bytes | None = None
    ) -> AbstractAsyncContextManager[UpstreamResponse]: ...

    async def get(self, url: str) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class _HttpxResponse:
    __slots__ = ("_resp", "status")

    def __init__(self, resp: httpx.Response) -> None:
        self._resp = resp
        self.status = resp.status_code

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamError("read", f"{type(exc).__name__}: {exc}") from exc

    async def read(self) -> bytes:
        try:
            return await self._resp.aread()
        except httpx.HTTPError as exc:
            raise UpstreamError("read", f"{type(exc).__name__}: {exc}") from exc


def _translate(exc: httpx.HTTPError) -> UpstreamError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return UpstreamError("connect", f"cannot connect: {exc}")
    return UpstreamError("protocol", f"{type(exc).__name__}: {exc}")


class HttpxUpstream:
    """One `httpx.AsyncClient` per process with explicit limits, `trust_env=False`, bytes passed through."""

    def __init__(self, cfg: UpstreamConfig) -> None:
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=cfg.max_connections, max_keepalive_connections=cfg.max_keepalive
            ),
            timeout=httpx.Timeout(
                connect=cfg.connect_timeout, read=None, write=60.0, pool=cfg.connect_timeout
            ),
            trust_env=False,
            follow_redirects=False,
        )

    @asynccontextmanager
    async def stream(
        self, method: str, url: str, body: bytes | None = None
    ) -> AsyncIterator[UpstreamResponse]:
        request = self._client.build_request(method, url, content=body, headers=JSON_HEADERS)
        try:
            resp = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _translate(exc) from exc
        try:
            yield _HttpxResponse(resp)
        finally:
            await resp.aclose()

    async def get(self, url: str) -> tuple[int, bytes]:
        try:
            resp = await self._client.get(url)
        except httpx.HTTPError as exc:
            raise _translate(exc) from exc
        return resp.status_code, resp.content

    async def aclose(self) -> None:
        await self._client.aclose()

"""One attempt on one node: send the request, wait for the first byte, read on to the commit point.

`herd.routing.proxy` calls `attempt` inside its retry loop with the attempt's own exit stack (the upstream
response lives on it). Whatever fails here, before anything reached the client, is retried on another node: a
connection error, an error status, silence, a stream cut before its first content, a non-streamed reply cut
anywhere (`herd.routing.commit` says where a reply commits). The returned `Opened` is what the relays read.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import trio

from herd.backends import kinds
from herd.backends.upstream import Upstream, UpstreamError, error_message
from herd.config import UpstreamConfig
from herd.errors import UpstreamStatus
from herd.fleet.state import NodeState
from herd.routing import commit
from herd.routing.lines import LineStream


@dataclass(slots=True)
class Opened:
    """A backend response read up to its commit point; nothing has been sent to the client yet."""

    node: NodeState
    model: str
    lines: LineStream
    retries: int
    queue_wait: float
    native: bool = False  # the lines are the node's own OpenAI SSE/JSON (herd.routing.native relays them)
    first_byte: float = 0.0  # trio clock when the node's first body bytes arrived


async def attempt(
    upstream: Upstream,
    ucfg: UpstreamConfig,
    scope: AsyncExitStack,
    node: NodeState,
    model: str,
    path: str,
    body: bytes,
    native: dict[str, Any] | None = None,
    *,
    stream: bool = True,
) -> Opened:
    # Ollama sends headers with its first chunk, after any model load: one deadline covers both.
    first_byte_deadline = trio.current_time() + ucfg.first_byte_timeout
    req = kinds.request_for(node, path, body, native=native, model=model)
    lines: LineStream | None = None
    with trio.move_on_at(first_byte_deadline) as cs:  # one scope for the head and the first byte
        resp = await scope.enter_async_context(upstream.stream(req.method, node.url + req.path, req.body))
        if resp.status == 200:
            chunks = resp.chunks()
            if req.wrap is not None:
                chunks = req.wrap(chunks)
                scope.push_async_callback(chunks.aclose)  # type: ignore[attr-defined]  # an async generator
            # a burst the node already sent goes on in one block (`ready`: no I/O)
            raw = req.wrap is None
            lines = LineStream(
                chunks, ucfg.idle_timeout, resp.ready if raw else None, resp.done if raw else None
            )
            await lines.prime()
    if cs.cancelled_caught:
        what = "response" if lines is None else "first byte"
        raise UpstreamError("idle", f"no {what} within {ucfg.first_byte_timeout:g} s")
    if lines is None:
        with trio.move_on_after(ucfg.connect_timeout):
            raise UpstreamStatus(resp.status, error_message(await resp.read()))
        raise UpstreamStatus(resp.status, f"HTTP {resp.status}")
    first_byte = trio.current_time()
    if stream:
        with trio.move_on_at(first_byte_deadline) as cs:
            verdict = await lines.fill(lambda buf, eof: commit.first_content(buf, req.native, eof))
        if cs.cancelled_caught:
            raise UpstreamError("idle", f"no content within {ucfg.first_byte_timeout:g} s")
    else:
        expects_done = path in ("/api/chat", "/api/generate")
        verdict = await lines.fill(
            lambda buf, eof: commit.complete(buf, req.native, expects_done) if eof else commit.WAIT
        )
    if verdict != commit.GO:
        raise UpstreamError("backend", verdict.removeprefix("error: "))
    return Opened(node, model, lines, retries=0, queue_wait=0.0, native=req.native, first_byte=first_byte)

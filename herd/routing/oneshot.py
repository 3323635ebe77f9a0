"""Calls to a node beside the proxied requests, through `herd.routing.proxy.Proxy`'s ranking and upstream:
a small one-shot POST (`/api/show`) that tries the next node when one is unreachable, and a request pinned to one
node for the fleet benchmarks (`herd.insight.runner`). Neither waits in the holding queue or falls back."""

from __future__ import annotations

import json
import logging
from contextlib import AsyncExitStack

import trio

from herd.backends import kinds
from herd.backends.upstream import UpstreamError
from herd.errors import UpstreamFailed
from herd.fleet.state import NodeState
from herd.routing.attempt import Opened, attempt
from herd.routing.proxy import Proxy
from herd.routing.score import Facts
from herd.routing.select import no_candidate_error

log = logging.getLogger("herd.proxy")


def pick(proxy: Proxy, model: str, exclude: set[str] | frozenset[str] = frozenset()) -> NodeState:
    """The best node for a one-shot call (no slot held); raises the client-facing error if none."""
    ranked = proxy.ranked(Facts(model), exclude)
    if not ranked:
        if proxy.starting(model):
            raise proxy.starting_error(model)
        raise no_candidate_error(
            proxy.registry.snapshot, model, proxy.cfg.fleet.heartbeat_interval, reasons=proxy.why_not(model)
        )
    return ranked[0].node


async def call(proxy: Proxy, model: str, path: str, body: bytes) -> tuple[NodeState, int, bytes]:
    """A small one-shot POST (e.g. `/api/show`) on a node that has `model`, trying the next node if one is
    unreachable. Holds no slot: it does not generate."""
    tried: set[str] = set()
    while True:
        node = pick(proxy, model, tried)
        tried.add(node.node_id)
        if not node.heartbeat.speaks_ollama and path == "/api/show":
            return node, 200, json.dumps(kinds.show(node, model)).encode()
        try:
            with trio.fail_after(proxy.cfg.upstream.first_byte_timeout):
                async with proxy.upstream.stream("POST", node.url + path, body) as resp:
                    return node, resp.status, await resp.read()
        except (UpstreamError, trio.TooSlowError) as exc:
            log.warning("%s on %s failed: %s", path, node.node_id, exc)
            if len(tried) > proxy.cfg.max_retries:
                raise UpstreamFailed(f"{path} failed on every node tried: {exc}") from exc


async def open_pinned(
    proxy: Proxy, stack: AsyncExitStack, node: NodeState, model: str, path: str, body: bytes
) -> Opened:
    """Send an Ollama-form request to exactly `node` (internal callers only, e.g. benchmarks; no HTTP caller can
    pin): no holding queue, no retry, no fallback. The slot is counted on `stack` for as long as the response is
    open, so real requests see the node busy; the caller decides when it may go."""
    proxy.slots.reserve(node.node_id, model)
    stack.callback(proxy.slots.release, node.node_id, model)
    return await attempt(proxy.upstream, proxy.cfg.upstream, stack, node, model, path, body)

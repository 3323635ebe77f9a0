"""Auto-pull (a runtime toggle, off by default): a request for a model no node has pulls it onto the best node
first, then waits until that node's heartbeat lists it. Called by `herd.routing.proxy.Proxy.open` before
routing; the request then proceeds as usual (and fails with the usual 404 if no pull worked).

Targets come from `herd.routing.select.pull_targets` (paused nodes never); a pull that fails on one node is
tried on the next, so one broken node does not turn the request into a 404.
"""

from __future__ import annotations

import json
import logging

from herd.backends.upstream import Upstream, UpstreamError
from herd.fleet.registry import Registry
from herd.routing.select import pull_targets

log = logging.getLogger("herd.proxy")


async def _pull(upstream: Upstream, url: str, model: str) -> str | None:
    """Pull `model` through the node's Ollama at `url`; None when it worked, else why not."""
    body = json.dumps({"model": model, "stream": False}).encode()
    try:
        async with upstream.stream("POST", url + "/api/pull", body) as resp:
            data = await resp.read()
    except UpstreamError as exc:
        return str(exc)
    if resp.status != 200:
        return f"HTTP {resp.status}"
    try:
        answer = json.loads(data)
    except ValueError:
        return None
    if isinstance(answer, dict) and answer.get("error"):
        return str(answer["error"])
    return None


async def auto_pull(registry: Registry, upstream: Upstream, model: str) -> None:
    """Pull `model` onto the best Ollama node that takes it and wait until its heartbeat lists it. The caller
    bounds it with its own cancel scope."""
    snap = registry.snapshot
    if snap.knows_model(model):
        return
    for target in pull_targets(snap, registry.paused):
        log.info("auto-pulling %s onto %s", model, target.node_id)
        failed = await _pull(upstream, target.url, model)
        if failed is None:
            break
        log.warning("auto-pull of %s on %s failed: %s", model, target.node_id, failed)
    else:
        return
    while not registry.snapshot.knows_model(model):  # the node's next heartbeat lists it
        await registry.wait_changed()

"""Auto-pull (a runtime toggle, off by default): a request for a model no node has pulls it onto the best node
first, then waits until that node's heartbeat lists it. Called by `herd.routing.proxy.Proxy.open` before
routing; the request then proceeds as usual (and fails with the usual 404 if the pull did not work)."""

from __future__ import annotations

import json
import logging

from herd.backends.upstream import Upstream, UpstreamError
from herd.fleet.registry import Registry
from herd.routing.select import pull_target

log = logging.getLogger("herd.proxy")


async def auto_pull(registry: Registry, upstream: Upstream, model: str) -> None:
    """Pull `model` onto the best Ollama node and wait until its heartbeat lists it. The caller bounds it with
    its own cancel scope."""
    snap = registry.snapshot
    if snap.knows_model(model):
        return
    target = pull_target(snap)
    if target is None:
        return
    log.info("auto-pulling %s onto %s", model, target.node_id)
    body = json.dumps({"model": model, "stream": False}).encode()
    try:
        async with upstream.stream("POST", target.url + "/api/pull", body) as resp:
            await resp.read()
            if resp.status != 200:
                log.warning("auto-pull of %s on %s failed: HTTP %d", model, target.node_id, resp.status)
                return
    except UpstreamError as exc:
        log.warning("auto-pull of %s on %s failed: %s", model, target.node_id, exc)
        return
    while not registry.snapshot.knows_model(model):  # the node's next heartbeat lists it
        await registry.wait_changed()

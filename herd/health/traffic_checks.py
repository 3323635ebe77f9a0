"""Health checks over recent requests: thrashing, error and timeout rates, retries, disconnects, cut streams,
idle nodes, saturation, context protection."""

from __future__ import annotations

from collections import Counter

from herd.health.base import Facts, Finding, _rate, check


@check
def thrashing(f: Facts) -> list[Finding]:
    loads = Counter(
        (r.node_id, r.model) for r in f.recent if (r.final.get("load_duration") or 0) > 2e9 and r.node_id
    )
    return [
        Finding(
            "model_thrashing",
            "warning",
            f"{node}/{model}",
            f"{model} keeps reloading on {node}",
            f"{n} loads over 2 s in the recent requests",
            "raise keep_alive or OLLAMA_MAX_LOADED_MODELS",
        )
        for (node, model), n in loads.items()
        if n >= 3
    ]


@check
def error_rate(f: Facts) -> list[Finding]:
    rate = _rate(f.recent, lambda r: r.status >= 500 or (r.status == 200 and r.error is not None))
    if len(f.recent) >= 10 and rate > 0.05:
        return [
            Finding(
                "error_rate",
                "critical" if rate > 0.2 else "warning",
                "fleet",
                "requests are failing",
                f"{rate:.0%} of the last {len(f.recent)} failed",
                "look at /fleet/traces?status=502",
            )
        ]
    return []


@check
def timeouts(f: Facts) -> list[Finding]:
    n = sum(1 for r in f.recent if r.error and "sent nothing" in r.error)
    return (
        [
            Finding(
                "stream_timeouts",
                "warning",
                "fleet",
                "backends went silent mid-stream",
                f"{n} recent streams",
                "check the nodes' load; raise --stream-idle-timeout for very slow models",
            )
        ]
        if n
        else []
    )


@check
def retries(f: Facts) -> list[Finding]:
    rate = _rate(f.recent, lambda r: r.retries > 0)
    if len(f.recent) >= 10 and rate > 0.1:
        return [
            Finding(
                "retries",
                "warning",
                "fleet",
                "many requests needed another node",
                f"{rate:.0%} retried",
                "a node is failing before its first byte: check /fleet/status and the breakers",
            )
        ]
    return []


@check
def disconnects(f: Facts) -> list[Finding]:
    rate = _rate(f.recent, lambda r: r.status == 499)
    if len(f.recent) >= 10 and rate > 0.1:
        return [
            Finding(
                "client_disconnects",
                "info",
                "fleet",
                "clients give up before the end",
                f"{rate:.0%} of recent requests",
                "clients may have short timeouts; check queue waits",
            )
        ]
    return []


@check
def incomplete_streams(f: Facts) -> list[Finding]:
    n = sum(1 for r in f.recent if r.status == 200 and r.error is not None)
    return (
        [
            Finding(
                "incomplete_streams",
                "warning",
                "fleet",
                "streams were cut after they started",
                f"{n} recent streams ended with an error line",
                "see /fleet/traces for the nodes involved",
            )
        ]
        if n
        else []
    )


@check
def idle_nodes(f: Facts) -> list[Finding]:
    served = {r.node_id for r in f.recent}
    if len(f.recent) < 20:
        return []
    return [
        Finding(
            "idle_node",
            "info",
            n.node_id,
            f"{n.node_id} served nothing recently",
            "no request among the recent ones",
            "pull the popular models onto it (`herd pull --node`)",
        )
        for n in f.snap.nodes.values()
        if n.routable and n.node_id not in served
    ]


@check
def saturation(f: Facts) -> list[Finding]:
    waits = [r.queue_wait for r in f.recent if r.queue_wait > 1.0]
    deep = {m: d for m, d in f.queue.items() if d >= 5}
    out = [
        Finding(
            "saturation",
            "warning",
            model,
            f"{depth} requests wait for {model}",
            "every node is full",
            "add a node with this model or raise its parallelism",
        )
        for model, depth in deep.items()
    ]
    if len(waits) >= 5:
        out.append(
            Finding(
                "queue_waits",
                "info",
                "fleet",
                "requests waited for a slot",
                f"{len(waits)} recent requests waited over 1 s",
                "the fleet runs near capacity",
            )
        )
    return out


@check
def context_protection(f: Facts) -> list[Finding]:
    n = sum(1 for r in f.recent if r.context_protected)
    return (
        [
            Finding(
                "context_protection",
                "info",
                "fleet",
                "smaller num_ctx values were dropped",
                f"{n} recent requests would have forced a reload",
                "align clients' num_ctx with the loaded one",
            )
        ]
        if n
        else []
    )

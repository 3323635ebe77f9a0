"""Health checks over node state: offline/degraded nodes, backends down, memory and disk, context bloat,
version drift, draining/paused nodes, open breakers, ejected outliers."""

from __future__ import annotations

from herd.fleet.state import NodeStatus
from herd.health.base import Facts, Finding, check


@check
def offline_nodes(f: Facts) -> list[Finding]:
    return [
        Finding(
            "offline_nodes",
            "critical",
            n.node_id,
            f"{n.node_id} is offline",
            "no heartbeat for 30 s",
            "check the machine and that `herd node` runs on it",
        )
        for n in f.snap.nodes.values()
        if n.status is NodeStatus.OFFLINE
    ]


@check
def degraded_nodes(f: Facts) -> list[Finding]:
    return [
        Finding(
            "degraded_nodes",
            "warning",
            n.node_id,
            f"{n.node_id} is degraded",
            "heartbeats are late",
            "check the network between the node and the router",
        )
        for n in f.snap.nodes.values()
        if n.status is NodeStatus.DEGRADED
    ]


@check
def backend_down(f: Facts) -> list[Finding]:
    return [
        Finding(
            "backend_down",
            "critical",
            n.node_id,
            f"Ollama on {n.node_id} is not answering",
            n.heartbeat.backend_url,
            "restart Ollama on that machine (`ollama serve`)",
        )
        for n in f.snap.nodes.values()
        if n.status is NodeStatus.ONLINE and not n.heartbeat.backend_up
    ]


@check
def memory_pressure(f: Facts) -> list[Finding]:
    out = []
    for n in f.snap.nodes.values():
        host = n.heartbeat.host
        if host.mem_total and host.mem_available / host.mem_total < 0.10:
            out.append(
                Finding(
                    "memory_pressure",
                    "warning",
                    n.node_id,
                    f"{n.node_id} is low on memory",
                    f"{host.mem_available / host.mem_total:.0%} available",
                    "load fewer models there (OLLAMA_MAX_LOADED_MODELS) or smaller quantizations",
                )
            )
    return out


@check
def disk_low(f: Facts) -> list[Finding]:
    return [
        Finding(
            "disk_low",
            "warning",
            n.node_id,
            f"{n.node_id} has little disk left",
            f"{n.heartbeat.host.disk_free / 2**30:.1f} GiB free",
            "delete unused models (`DELETE /api/delete`)",
        )
        for n in f.snap.nodes.values()
        if 0 < n.heartbeat.host.disk_free < 10 * 2**30
    ]


@check
def kv_bloat(f: Facts) -> list[Finding]:
    used: dict[tuple[str, str], int] = {}
    for r in f.recent:
        if r.node_id and r.prompt_tokens is not None:
            key = (r.node_id, r.model)
            used[key] = max(used.get(key, 0), (r.prompt_tokens or 0) + (r.completion_tokens or 0))
    out = []
    for n in f.snap.nodes.values():
        for model, ctx in n.contexts.items():
            peak = used.get((n.node_id, model))
            if peak and ctx >= 8 * peak and ctx >= 16384:
                out.append(
                    Finding(
                        "kv_cache_bloat",
                        "info",
                        f"{n.node_id}/{model}",
                        f"{model} holds a large context",
                        f"loaded with {ctx} tokens, requests use at most {peak}",
                        "lower num_ctx for this model to free memory",
                    )
                )
    return out


@check
def version_mismatch(f: Facts) -> list[Finding]:
    versions = {v for n in f.snap.nodes.values() if (v := n.heartbeat.ollama_version)}
    if len(versions) > 1:
        return [
            Finding(
                "version_mismatch",
                "info",
                "fleet",
                "nodes run different Ollama versions",
                ", ".join(sorted(versions)),
                "upgrade them together; clients see the oldest",
            )
        ]
    return []


@check
def draining_and_paused(f: Facts) -> list[Finding]:
    out = [
        Finding(
            "draining",
            "info",
            n.node_id,
            f"{n.node_id} is draining",
            "its agent is shutting down",
            "expected during restarts",
        )
        for n in f.snap.nodes.values()
        if n.heartbeat.draining
    ]
    out += [
        Finding(
            "paused",
            "info",
            node,
            f"{node} is paused",
            "taken out of rotation by an operator",
            f"POST /fleet/nodes/{node}/resume to bring it back",
        )
        for node in sorted(f.paused)
    ]
    return out


@check
def breakers_open(f: Facts) -> list[Finding]:
    return [
        Finding(
            "circuit_open",
            "critical",
            node,
            f"{node} refuses connections",
            "its circuit breaker is open",
            "check that Ollama listens on the advertised address (OLLAMA_HOST=0.0.0.0)",
        )
        for node in sorted(f.broken)
    ]


@check
def outliers_ejected(f: Facts) -> list[Finding]:
    return [
        Finding(
            "outlier_ejected",
            "critical",
            node,
            f"{node} fails far more requests than the rest of the fleet",
            "ejected by outlier detection (5xx, cut or broken streams); probed again when its backoff ends",
            "check the backend's logs on that machine; /fleet/status shows its recent failures",
        )
        for node in sorted(f.ejected)
    ]


@check
def stale_agents(f: Facts) -> list[Finding]:
    versions = {n.heartbeat.agent_version for n in f.snap.nodes.values()}
    if len(versions) > 1:
        return [
            Finding(
                "agent_versions",
                "info",
                "fleet",
                "node agents run different versions",
                ", ".join(sorted(versions)),
                "update herd on every node",
            )
        ]
    return []

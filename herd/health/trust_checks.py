"""Health checks over the heartbeat gate's record (`herd.fleet.trust`): heartbeats the router refused lately
because they advertised another host's address, tried to take over a node id, or were not signed with the
fleet token. One finding per (kind, address, node id), with how many and the last reason."""

from __future__ import annotations

from herd.fleet.trust import Refusal
from herd.health.base import Facts, Finding, check

ADVICE = {
    "address": "a node may only advertise URLs on its own address: check that agent's --advertise-url, or "
    "find out who sends these heartbeats",
    "takeover": "two agents use one node id: give each its own --node-id, or find out who sends these",
    "signature": "start every agent with this fleet's --fleet-token (and check the clocks), or find out who "
    "sends these heartbeats",
}
TITLE = {
    "address": "advertising another host's address",
    "takeover": "taking over a node id",
    "signature": "without a valid fleet-token signature",
}


@check
def refused_heartbeats(f: Facts) -> list[Finding]:
    groups: dict[tuple[str, str, str | None], list[Refusal]] = {}
    for r in f.refusals:
        groups.setdefault((r.kind, r.peer, r.node_id), []).append(r)
    out = []
    for (kind, peer, node_id), items in groups.items():
        who = f"{node_id} from {peer}" if node_id else peer
        out.append(
            Finding(
                "refused_heartbeats",
                "critical" if kind == "takeover" else "warning",
                who,
                f"{len(items)} heartbeat(s) refused from {peer}: {TITLE[kind]}",
                items[-1].reason,
                ADVICE[kind],
            )
        )
    return out

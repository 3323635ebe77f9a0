"""Which heartbeats the router believes, with no configuration: the checks `POST /heartbeat` runs after the
fleet token (`herd.fleet.signing`) and parsing (`herd.fleet.heartbeat`), before the registry ingests.

- Address binding: a node may only advertise a backend (and media) URL on the address its heartbeat came from.
  The URL's host must be an IP literal equal to that address (an IPv4-mapped IPv6 peer such as
  `::ffff:10.0.0.5` counts as `10.0.0.5`; an IPv6 zone is ignored). Host names are refused: a name the router
  resolves now may resolve elsewhere when it connects (DNS rebinding). A heartbeat from loopback may advertise
  any loopback host (`127.x`, `::1`, `localhost`, `0.0.0.0`): it comes from this machine. Agents already
  rewrite a loopback backend to their address on the route to the router (`herd.node.agent.advertised_url`).
- Node-id takeover: a node id registered from one address cannot be reported from another while the node is
  not offline; the router's own local node (ingested in-process, no address) cannot be taken over at all.

Refusals are kept in a small bounded record (`Refusals`) that the health check `refused_heartbeats` reads;
each new kind of refusal is logged once at warning (no secrets: address, node id, reason).
"""

from __future__ import annotations

import ipaddress
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from herd.errors import FleetUnauthorized, HeartbeatRefused, NodeIdTaken
from herd.fleet.heartbeat import Heartbeat
from herd.fleet.signing import HeaderLookup, Verifier
from herd.fleet.state import FleetSnapshot, NodeStatus

log = logging.getLogger("herd.fleet.trust")

LOOPBACK_NAMES = frozenset({"localhost", "0.0.0.0", "::"})
RECORD_SIZE = 64
# Refusals older than this (seconds) no longer show in the health check.
RECENT = 3600.0

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def normalize_ip(text: str) -> IP | None:
    """`text` as an address (IPv4-mapped IPv6 as IPv4, zone dropped), None when it is not an IP literal."""
    try:
        addr = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    addr = normalize_ip(host)
    return addr is not None and addr.is_loopback


def advertised_urls(hb: Heartbeat) -> list[str]:
    """Every URL the router would connect to for this node: the backend and each media backend."""
    return [hb.backend_url, *(m["url"] for m in hb.media)]


def binding_problem(urls: Iterable[str], peer: str) -> str | None:
    """Why a node at `peer` may not advertise `urls`, or None when every URL is on its own address."""
    peer_ip = normalize_ip(peer)
    for url in urls:
        host = urlsplit(url).hostname or ""
        if peer_ip is not None and peer_ip.is_loopback and _is_loopback(host):
            continue
        if peer_ip is not None and normalize_ip(host) == peer_ip:
            continue
        expected = f"[{peer_ip}]" if isinstance(peer_ip, ipaddress.IPv6Address) else str(peer_ip or peer)
        return (
            f"the heartbeat came from {peer} but advertises {url}: a node may only advertise URLs on its own "
            f"address (expected host {expected}, an IP address; set --advertise-url on the agent if needed)"
        )
    return None


def takeover_problem(snap: FleetSnapshot, known_peer: str | None, node_id: str, peer: str) -> str | None:
    """Why a heartbeat for `node_id` from `peer` may not update that node, or None."""
    node = snap.nodes.get(node_id)
    if node is None or node.status is NodeStatus.OFFLINE:
        return None
    if known_peer is None:
        return f"node id '{node_id}' is this router's own node"
    peer_ip = normalize_ip(peer)
    if known_peer == peer or (peer_ip is not None and normalize_ip(known_peer) == peer_ip):
        return None
    return (
        f"node id '{node_id}' is registered from {known_peer} and still {node.status.value}; "
        f"a heartbeat from {peer} cannot take it over (give this agent another --node-id)"
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    at: float  # trio clock
    kind: str  # "address", "takeover", "signature"
    peer: str
    node_id: str | None
    reason: str


class Refusals:
    """The last `RECORD_SIZE` refused heartbeats; logs each new (kind, peer, node) once at warning."""

    def __init__(self, size: int = RECORD_SIZE) -> None:
        self.items: deque[Refusal] = deque(maxlen=size)

    def add(self, refusal: Refusal) -> None:
        key = (refusal.kind, refusal.peer, refusal.node_id)
        if not any((r.kind, r.peer, r.node_id) == key for r in self.items):
            log.warning(
                "refused a heartbeat from %s (node %s): %s", refusal.peer, refusal.node_id, refusal.reason
            )
        self.items.append(refusal)

    def recent(self, now: float) -> tuple[Refusal, ...]:
        return tuple(r for r in self.items if now - r.at < RECENT)


class FleetGate:
    """The router's heartbeat gate: the fleet token's verifier (None without a token), which address each node
    id came from, and what was refused."""

    def __init__(self, verifier: Verifier | None = None) -> None:
        self.verifier = verifier
        self.peers: dict[str, str] = {}
        self.refusals = Refusals()

    def verify(
        self, target: str, body: bytes, headers: HeaderLookup, peer: str, wall: float, now: float
    ) -> None:
        """Raise `FleetUnauthorized` (recorded) unless the heartbeat is signed with the fleet token, when the
        fleet has one. `wall` is Unix time (the signature's clock), `now` the trio clock (the record's)."""
        if self.verifier is None:
            return
        try:
            self.verifier.check("POST", target, body, headers, wall)
        except FleetUnauthorized as exc:
            self.refuse(now, "signature", peer, None, exc.message)
            raise

    def admit(self, snap: FleetSnapshot, hb: Heartbeat, peer: str, now: float) -> None:
        """Raise `HeartbeatRefused` (403) or `NodeIdTaken` (409), recorded, unless `hb` from `peer` may be
        ingested; on success remember `peer` as the node's address."""
        problem = binding_problem(advertised_urls(hb), peer)
        if problem is not None:
            self.refuse(now, "address", peer, hb.node_id, problem)
            raise HeartbeatRefused(problem, param="backend_url")
        problem = takeover_problem(snap, self.peers.get(hb.node_id), hb.node_id, peer)
        if problem is not None:
            self.refuse(now, "takeover", peer, hb.node_id, problem)
            raise NodeIdTaken(problem, param="node_id")
        self.peers[hb.node_id] = peer

    def refuse(self, now: float, kind: str, peer: str, node_id: str | None, reason: str) -> None:
        self.refusals.add(Refusal(now, kind, peer, node_id, reason))

"""Immutable fleet values and the pure transitions over them.

Heartbeats (`herd.fleet.heartbeat`) come in through the registry, which calls `apply_heartbeat`; the expiry
service calls `sweep`. Both return a new `FleetSnapshot` (or the same one when nothing changed), which routing,
the web API and the dashboard read without locks.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from herd.config import FleetConfig
from herd.fleet.heartbeat import OPENAI, Heartbeat

EMPTY_TIMES: Mapping[str, float] = MappingProxyType({})
EMPTY_SIZES: Mapping[str, int] = MappingProxyType({})
EMPTY_CAPS: Mapping[str, frozenset[str]] = MappingProxyType({})


class NodeStatus(enum.StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


def normalize_model(name: str) -> str:
    """Ollama's canonical model name: a missing tag means `:latest`."""
    name = name.strip()
    base = name.rsplit("/", 1)[-1]
    if name and ":" not in base:
        return name + ":latest"
    return name


@dataclass(frozen=True, slots=True)
class NodeState:
    heartbeat: Heartbeat
    first_seen: float
    last_seen: float
    status: NodeStatus
    models: frozenset[str]
    loaded: frozenset[str]
    # model -> when it left /api/ps (kept an hour): "warm" models reload faster (page cache) than cold ones
    unloaded_at: Mapping[str, float] = field(default_factory=lambda: EMPTY_TIMES)
    # when the node last went degraded/offline or lost its backend (kept an hour): its availability trend
    incidents: tuple[float, ...] = ()
    # derived once per heartbeat for scoring: model -> size on disk, model -> context it is loaded with
    sizes: Mapping[str, int] = field(default_factory=lambda: EMPTY_SIZES)
    contexts: Mapping[str, int] = field(default_factory=lambda: EMPTY_SIZES)
    # model -> what it can do ("completion", "tools", "vision", "thinking", "embedding"), when the backend says
    capabilities: Mapping[str, frozenset[str]] = field(default_factory=lambda: EMPTY_CAPS)

    @property
    def node_id(self) -> str:
        return self.heartbeat.node_id

    @property
    def url(self) -> str:
        return self.heartbeat.backend_url

    @property
    def routable_media(self) -> bool:
        """Can take media requests: heard from recently and not draining (its media backends are separate
        servers, so a down chat backend does not stop them)."""
        return self.status is NodeStatus.ONLINE and not self.heartbeat.draining

    @property
    def routable(self) -> bool:
        """Can take new requests: heard from recently, backend answering, not draining."""
        hb = self.heartbeat
        return self.status is NodeStatus.ONLINE and hb.backend_up and not hb.draining


EMPTY: Mapping[str, NodeState] = MappingProxyType({})
HISTORY = 3600.0


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    nodes: Mapping[str, NodeState] = field(default_factory=lambda: EMPTY)
    version: int = 0

    def with_nodes(self, nodes: dict[str, NodeState]) -> FleetSnapshot:
        return FleetSnapshot(MappingProxyType(nodes), self.version + 1)

    def knows_model(self, model: str) -> bool:
        return any(model in n.models for n in self.nodes.values())

    def serves(self, model: str) -> bool:
        """Some node has `model`, as a chat/embedding model or a media one (image, transcription)."""
        return self.knows_model(model) or any(
            m["model"] == model for n in self.nodes.values() for m in n.heartbeat.media
        )

    def lacks(self, model: str, needs: frozenset[str]) -> bool:
        """Every node that has `model` says it cannot do all of `needs` (unknown capabilities count as able)."""
        having = [n for n in self.nodes.values() if model in n.models]
        return bool(having) and all(
            model in n.capabilities and not needs <= n.capabilities[model] for n in having
        )


def status_for(last_seen: float, now: float, cfg: FleetConfig) -> NodeStatus:
    age = now - last_seen
    if age >= cfg.offline_after:
        return NodeStatus.OFFLINE
    if age >= cfg.degraded_after:
        return NodeStatus.DEGRADED
    return NodeStatus.ONLINE


def _recent(times: tuple[float, ...], now: float) -> tuple[float, ...]:
    return tuple(t for t in times if now - t < HISTORY)


def _capabilities(raw: list[object], backend: str) -> frozenset[str]:
    """What a model can do. Ollama embeds with any model that generates; an OpenAI-compatible server embeds
    only when its agent saw `/v1/embeddings` answer for that model."""
    caps = frozenset(c for c in raw if isinstance(c, str))
    if backend != OPENAI and "completion" in caps:
        caps |= {"embedding"}
    return caps


capabilities_of = _capabilities  # for herd.fleet.catalog_edit


def apply_heartbeat(snap: FleetSnapshot, hb: Heartbeat, now: float) -> FleetSnapshot:
    previous = snap.nodes.get(hb.node_id)
    loaded = frozenset(normalize_model(m["name"]) for m in hb.loaded)
    unloaded: dict[str, float] = {}
    incidents: tuple[float, ...] = ()
    if previous is not None:
        unloaded = {m: t for m, t in previous.unloaded_at.items() if now - t < HISTORY and m not in loaded}
        for gone in previous.loaded - loaded:
            unloaded[gone] = now
        incidents = _recent(previous.incidents, now)
        if previous.heartbeat.backend_up and not hb.backend_up:
            incidents += (now,)
    state = NodeState(
        heartbeat=hb,
        first_seen=previous.first_seen if previous else now,
        last_seen=now,
        status=NodeStatus.ONLINE,
        models=frozenset(normalize_model(m["name"]) for m in hb.models),
        loaded=loaded,
        unloaded_at=MappingProxyType(unloaded) if unloaded else EMPTY_TIMES,
        incidents=incidents,
        sizes=MappingProxyType(
            {normalize_model(m["name"]): m["size"] for m in hb.models if isinstance(m.get("size"), int)}
        ),
        capabilities=MappingProxyType(
            {
                normalize_model(m["name"]): _capabilities(m["capabilities"], hb.backend)
                for m in hb.models
                if isinstance(m.get("capabilities"), list)
            }
        ),
        contexts=MappingProxyType(
            {
                normalize_model(m["name"]): m["context_length"]
                for m in hb.loaded
                if isinstance(m.get("context_length"), int) and m["context_length"] > 0
            }
        ),
    )
    nodes = dict(snap.nodes)
    nodes[hb.node_id] = state
    return snap.with_nodes(nodes)


def sweep(snap: FleetSnapshot, now: float, cfg: FleetConfig) -> FleetSnapshot:
    """Re-derive every node's status from its heartbeat age, and forget nodes silent for `forget_after`;
    the same snapshot if nothing moved."""
    gone = [node_id for node_id, node in snap.nodes.items() if now - node.last_seen >= cfg.forget_after]
    if gone:
        snap = snap.with_nodes({k: v for k, v in snap.nodes.items() if k not in gone})
    changed: dict[str, NodeState] = {}
    for node_id, node in snap.nodes.items():
        status = status_for(node.last_seen, now, cfg)
        if status is not node.status:
            incidents = _recent(node.incidents, now)
            if node.status is NodeStatus.ONLINE:
                incidents += (now,)
            changed[node_id] = replace(node, status=status, incidents=incidents)
    if not changed:
        return snap
    return snap.with_nodes({**snap.nodes, **changed})


def forgotten(before: FleetSnapshot, after: FleetSnapshot) -> list[str]:
    """Nodes `sweep` dropped."""
    return [node_id for node_id in before.nodes if node_id not in after.nodes]

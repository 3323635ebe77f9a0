"""Routing for image generation and speech-to-text: pick a node whose agent advertises the media backend, hold
a slot on it for the call, send, and try the next node if one cannot be reached.

Node agents report media backends in their heartbeats (`herd.fleet.heartbeat`, `media`): an Ollama image
model (`api: ollama`), or an OpenAI-compatible images/transcriptions endpoint (`api: openai`), which is either a
server given by `--image-url`/`--stt-url` or the agent's own wrapper around a local command. The web routes in
`herd.web.media_api` call `Media.call` with a function building the request for the chosen backend. Choosing is
a pure function over the snapshot: the least busy online node first, ties by node id. A body larger than a
backend's `max_bytes` (reported by its agent, default 16 MiB) is never sent to it: another node takes it, or the
caller gets 413 at once (and before the upload is even read when its Content-Length exceeds every limit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import trio

from herd.backends.upstream import Upstream, UpstreamError
from herd.errors import (
    BadRequest,
    FleetStarting,
    ModelNotFound,
    NoNodeAvailable,
    PayloadTooLarge,
    UpstreamFailed,
)
from herd.fleet.heartbeat import DEFAULT_UPLOAD_LIMIT
from herd.fleet.signing import sign
from herd.fleet.state import FleetSnapshot, NodeState, NodeStatus, normalize_model
from herd.routing.guest import in_meeting
from herd.routing.slots import Slots

log = logging.getLogger("herd.media")


@dataclass(frozen=True, slots=True)
class Backend:
    node: NodeState
    model: str
    url: str
    api: str  # "openai" or "ollama"
    max_bytes: int = DEFAULT_UPLOAD_LIMIT  # the largest request body the backend takes


@dataclass(frozen=True, slots=True)
class Request:
    path: str
    body: bytes
    content_type: str = "application/json"


def catalog(snap: FleetSnapshot, kind: str) -> list[dict[str, Any]]:
    """Every `kind` model in the fleet, once, with the nodes serving it (offline nodes left out)."""
    models: dict[str, dict[str, Any]] = {}
    for node in sorted(snap.nodes.values(), key=lambda n: n.node_id):
        if node.status is NodeStatus.OFFLINE:
            continue
        for entry in node.heartbeat.media:
            if entry["kind"] != kind:
                continue
            item = models.setdefault(entry["model"], {"name": entry["model"], "kind": kind, "nodes": []})
            item["nodes"].append(
                {"node_id": node.node_id, "api": entry["api"], "online": node.routable_media}
            )
    return sorted(models.values(), key=lambda m: str(m["name"]))


def candidates(
    snap: FleetSnapshot, kind: str, model: str | None, in_flight: Mapping[tuple[str, str], int]
) -> list[Backend]:
    """Nodes that can serve `kind` for `model` (any model of that kind when None), least busy first."""
    wanted = normalize_model(model) if model else None
    found: list[tuple[int, str, Backend]] = []
    for node in snap.nodes.values():
        if not node.routable_media or in_meeting(node.heartbeat):  # --meeting-pause: no new work
            continue
        for entry in node.heartbeat.media:
            if entry["kind"] != kind or (wanted and normalize_model(entry["model"]) != wanted):
                continue
            busy = sum(n for (node_id, _), n in in_flight.items() if node_id == node.node_id)
            limit = int(entry.get("max_bytes", DEFAULT_UPLOAD_LIMIT))
            backend = Backend(node, entry["model"], entry["url"], entry["api"], limit)
            found.append((busy, node.node_id, backend))
            break
    return [b for _, _, b in sorted(found, key=lambda t: (t[0], t[1]))]


def upload_limit(snap: FleetSnapshot, kind: str) -> int | None:
    """The largest body any routable node takes for `kind`, or None when no node serves it."""
    limits = [
        int(e.get("max_bytes", DEFAULT_UPLOAD_LIMIT))
        for n in snap.nodes.values()
        if n.routable_media
        for e in n.heartbeat.media
        if e["kind"] == kind
    ]
    return max(limits, default=None)


def too_large(size: int, limit: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the upload ({size} bytes) is larger than any node serving {what} takes ({limit} bytes)"
    )


def no_backend(snap: FleetSnapshot, kind: str, model: str | None) -> Exception:
    what = "image generation" if kind == "image" else "speech-to-text"
    known = {e["model"] for n in snap.nodes.values() for e in n.heartbeat.media if e["kind"] == kind}
    if model and known and normalize_model(model) not in {normalize_model(m) for m in known}:
        return ModelNotFound(
            f"no node serves {what} with model '{model}' (available: {', '.join(sorted(known))})"
        )
    if known:
        return NoNodeAvailable(f"every node serving {what} is offline or draining", retry_after=5)
    return BadRequest(f"no node in the fleet advertises {what}: start an agent with a backend for it")


class Media:
    def __init__(
        self,
        registry_snapshot: Callable[[], FleetSnapshot],
        slots: Slots,
        upstream: Upstream,
        timeout: float,
        fleet_token: str | None = None,
        starting: Callable[[str], bool] = lambda model: False,
    ):
        self.snapshot = registry_snapshot
        self.slots = slots
        self.upstream = upstream
        self.timeout = timeout
        # With a fleet token every media call is signed: agents' command servers refuse unsigned ones.
        self.fleet_token = fleet_token
        self.starting = starting  # warm restart (herd.fleet.memory): its node has not reported yet

    def _signed(self, url: str, body: bytes) -> dict[str, str] | None:
        if self.fleet_token is None:
            return None
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return sign(self.fleet_token, "POST", target, body, time.time())

    async def call(
        self, kind: str, model: str | None, build: Callable[[Backend], Request], retries: int = 2
    ) -> tuple[Backend, int, bytes]:
        """Send what `build` makes for the best backend; the next one if it cannot be reached or the body is
        over its limit. Holds a slot on (node, kind:model) for the whole call."""
        snap = self.snapshot()
        found = candidates(snap, kind, model, self.slots.in_flight)
        if not found:
            if model and self.starting(model):
                raise FleetStarting(
                    f"herd is starting: the nodes that serve '{model}' have not reported since the router "
                    "restarted; retry shortly",
                    retry_after=2,
                )
            raise no_backend(snap, kind, model)
        failures: list[str] = []
        tried = 0
        for backend in found:
            if tried > retries:
                break
            req = build(backend)
            if len(req.body) > backend.max_bytes:
                failures.append(f"{backend.node.node_id}: takes at most {backend.max_bytes} bytes")
                continue
            tried += 1
            key = f"{kind}:{backend.model}"
            self.slots.reserve(backend.node.node_id, key)
            try:
                with trio.fail_after(self.timeout):
                    url = backend.url + req.path
                    async with self.upstream.stream(
                        "POST",
                        url,
                        req.body,
                        content_type=req.content_type,
                        headers=self._signed(url, req.body),
                    ) as resp:
                        return backend, resp.status, await resp.read()
            except (UpstreamError, trio.TooSlowError) as exc:
                reason = str(exc) or f"no answer within {self.timeout:g} s"
                failures.append(f"{backend.node.node_id}: {reason}")
                log.warning("%s on %s failed: %s", kind, backend.node.node_id, reason)
            finally:
                self.slots.release(backend.node.node_id, key)
        if not tried:
            raise too_large(len(req.body), max(b.max_bytes for b in found), kind)
        raise UpstreamFailed("every node tried failed: " + "; ".join(failures), retry_after=5)

"""Fleet routes: `POST /heartbeat` from node agents into the registry, `GET /fleet/status` out of it."""

from __future__ import annotations

import json
import time

import trio
from quart import Blueprint, Response, request

from herd import __version__
from herd.dialects.ollama import parse_body
from herd.errors import NotFound, PayloadTooLarge
from herd.fleet.heartbeat import MAX_NODE_ID, parse_heartbeat
from herd.health.base import Facts as HealthFacts
from herd.health.base import run_checks
from herd.metrics import render as render_metrics
from herd.observe.fleet_view import fleet_status, queue_rows
from herd.services import RouterServices
from herd.validate import text

JSON = "application/json; charset=utf-8"
DRAIN = 64 * 1024 * 1024


async def _body_within(limit: int) -> bytes:
    """The request body, or 413 when it is larger than `limit`: a node cannot make the router hold (and serve
    back) an arbitrarily large heartbeat. The excess is read and dropped (up to DRAIN bytes) so the sender
    sees the 413 rather than a reset connection; beyond that the connection is simply closed."""
    declared = request.content_length
    if declared is not None and declared > DRAIN:
        raise PayloadTooLarge(f"heartbeat larger than {limit} bytes", param="body")
    data, seen = bytearray(), 0
    async for chunk in request.body:
        seen += len(chunk)
        if seen <= limit:
            data += chunk
        elif seen > DRAIN:
            break
    if seen > limit:
        raise PayloadTooLarge(f"heartbeat larger than {limit} bytes", param="body")
    return bytes(data)


def blueprint(svc: RouterServices) -> Blueprint:
    bp = Blueprint("fleet", __name__)

    @bp.post("/heartbeat")
    async def heartbeat() -> Response:
        body = await _body_within(svc.cfg.fleet.heartbeat_max_bytes)
        peer, now = request.remote_addr or "", trio.current_time()
        target = request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
        svc.gate.verify(target, body, request.headers, peer, time.time(), now)  # before parsing anything
        hb = parse_heartbeat(parse_body(body))
        svc.gate.admit(svc.registry.snapshot, hb, peer, now)
        svc.registry.ingest(hb)
        payload = {"ok": True, "interval": svc.cfg.fleet.heartbeat_interval, "router_version": __version__}
        return Response(json.dumps(payload), content_type=JSON)

    @bp.get("/fleet/status")
    async def status() -> Response:
        payload = fleet_status(svc)
        return Response(json.dumps(payload), content_type=JSON)

    @bp.post("/fleet/nodes/<node_id>/pause")
    async def pause(node_id: str) -> Response:
        return _paused(node_id, True)

    @bp.post("/fleet/nodes/<node_id>/resume")
    async def resume(node_id: str) -> Response:
        return _paused(node_id, False)

    def _paused(node_id: str, paused: bool) -> Response:
        text(node_id, "node_id", MAX_NODE_ID)
        if not svc.registry.pause(node_id, paused):
            raise NotFound(f"no node '{node_id}' in the fleet", param="node_id")
        return Response(json.dumps({"node_id": node_id, "paused": paused}), content_type=JSON)

    @bp.get("/fleet/health")
    async def health() -> Response:
        now = trio.current_time()
        facts = HealthFacts(
            snap=svc.registry.snapshot,
            recent=list(svc.recorder.recent),
            queue=svc.queue.depths(),
            broken=svc.proxy.breakers.open_nodes(now),
            paused=frozenset(svc.registry.paused),
            refusals=svc.gate.refusals.recent(now),
            ejected=svc.proxy.outliers.ejected(now),
        )
        return Response(json.dumps({"findings": run_checks(facts)}), content_type=JSON)

    @bp.get("/metrics")
    async def metrics() -> Response:
        snap = svc.registry.snapshot
        states = {n.node_id: n.status.value for n in snap.nodes.values()}
        text = render_metrics(
            svc.metrics,
            node_states=states,
            in_flight=dict(svc.slots.in_flight),
            queue_depths=svc.queue.depths(),
        )
        return Response(text, content_type="text/plain; version=0.0.4; charset=utf-8")

    @bp.get("/fleet/queue")
    async def queue() -> Response:
        rows = queue_rows(svc)
        payload = {"queues": rows, "waiting": sum(r["depth"] for r in rows), "in_flight": svc.slots.total()}
        return Response(json.dumps(payload), content_type=JSON)

    return bp

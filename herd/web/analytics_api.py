"""Analytics routes over the trace database: thin handlers that validate the query string and run one query
from `herd.store.queries` in a worker thread (SQLite never runs on the event loop). Ranges go up to 720 hours
(30 days); `/fleet/analytics/series` is the Trends charts' data (`herd.store.series`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio
from quart import Blueprint, Response, request

from herd.errors import BadRequest
from herd.services import RouterServices
from herd.store import queries, series

JSON = "application/json; charset=utf-8"


def _hours() -> int:
    raw = request.args.get("hours", "24")
    if not raw.isdigit() or not 1 <= int(raw) <= series.MAX_HOURS:
        raise BadRequest(f"'hours' must be a whole number from 1 to {series.MAX_HOURS}", param="hours")
    return int(raw)


def _name(param: str) -> str | None:
    raw = request.args.get(param, "").strip()
    if len(raw) > 200:
        raise BadRequest(f"'{param}' is too long", param=param)
    return raw or None


def blueprint(svc: RouterServices) -> Blueprint:
    bp = Blueprint("analytics", __name__)

    async def run(query: Callable[[Any], Any]) -> Response:
        path = svc.cfg.data_dir / "traces.db"

        def work() -> Any:
            if not path.exists():
                return None
            conn = queries.connect(path)
            try:
                return query(conn)
            finally:
                conn.close()

        result = await trio.to_thread.run_sync(work)
        return Response(json.dumps(result), content_type=JSON)

    @bp.get("/fleet/analytics/overview")
    async def overview() -> Response:
        hours = _hours()
        return await run(lambda c: queries.overview(c, hours))

    @bp.get("/fleet/analytics/trends")
    async def trends() -> Response:
        hours = _hours()
        return await run(lambda c: queries.trends(c, hours))

    @bp.get("/fleet/analytics/series")
    async def time_series() -> Response:
        hours, model, node = _hours(), _name("model"), _name("node")
        return await run(lambda c: series.series(c, hours, model=model, node=node))

    @bp.get("/fleet/analytics/models")
    async def models() -> Response:
        hours = _hours()
        return await run(lambda c: {"hours": hours, "models": queries.by(c, hours, "model")})

    @bp.get("/fleet/analytics/nodes")
    async def nodes() -> Response:
        hours = _hours()
        return await run(lambda c: {"hours": hours, "nodes": queries.by(c, hours, "node")})

    @bp.get("/fleet/analytics/apps")
    async def apps() -> Response:
        hours = _hours()
        return await run(lambda c: {"hours": hours, "apps": queries.apps(c, hours)})

    @bp.get("/fleet/traces")
    async def traces() -> Response:
        limit = request.args.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise BadRequest("'limit' must be a whole number from 1 to 1000", param="limit")
        filters = {
            k: request.args[k]
            for k in ("model", "node", "dialect", "status", "tag", "since")
            if k in request.args
        }
        if not filters.get("status", "0").isdigit():
            raise BadRequest("'status' must be an HTTP status code", param="status")
        try:
            float(filters.get("since", "0"))
        except ValueError as exc:
            raise BadRequest("'since' must be seconds since the epoch", param="since") from exc
        return await run(lambda c: {"traces": queries.traces(c, limit=int(limit), filters=filters)})

    return bp

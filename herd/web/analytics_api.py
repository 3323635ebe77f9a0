"""Analytics routes over the trace database: thin handlers that validate the query string and run one query
from `herd.store.queries` in a worker thread (SQLite never runs on the event loop). Ranges go up to 720 hours
(30 days); `/fleet/analytics/series` is the Trends charts' data (`herd.store.series`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import trio
from quart import Blueprint, Response, request

from herd.errors import BadRequest
from herd.services import RouterServices
from herd.store import queries, series
from herd.validate import query_int, text

MAX_FILTER = 256

JSON = "application/json; charset=utf-8"


def _hours() -> int:
    return query_int(request.args, "hours", 24, 1, series.MAX_HOURS)


def _name(param: str) -> str | None:
    return text(request.args.get(param, "").strip(), param, MAX_FILTER, empty=True) or None


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
        limit = query_int(request.args, "limit", 100, 1, 1000)
        filters = {
            k: text(request.args[k], k, MAX_FILTER, empty=True)
            for k in ("model", "node", "dialect", "status", "tag", "since")
            if k in request.args
        }
        if "status" in filters:
            query_int(filters, "status", 0, 100, 599)
        try:
            since = float(filters.get("since", "0"))
        except ValueError as exc:
            raise BadRequest("'since' must be seconds since the epoch", param="since") from exc
        if not math.isfinite(since):
            raise BadRequest("'since' must be seconds since the epoch", param="since")
        return await run(lambda c: {"traces": queries.traces(c, limit=limit, filters=filters)})

    return bp

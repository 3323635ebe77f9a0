"""Fleet insight routes: usage history (`GET /fleet/analytics/usage`), benchmarks (`/fleet/benchmarks`) and
recommendations (`GET /fleet/recommendations`). Thin handlers: validate, then read the trace database in a
worker thread on a read-only connection, or hand over to the benchmark runner / the pure recommender."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio
from quart import Blueprint, Response, request

from herd.errors import BadRequest
from herd.services import RouterServices
from herd.store import queries

JSON = "application/json; charset=utf-8"


def _days() -> int:
    raw = request.args.get("days", "7")
    if not raw.isdigit() or not 1 <= int(raw) <= 366:
        raise BadRequest("'days' must be a whole number from 1 to 366", param="days")
    return int(raw)


async def read_traces(svc: RouterServices, query: Callable[[Any], Any], empty: Any = None) -> Any:
    """Run `query(connection)` on the trace DB in a worker thread (`empty` when there is no DB yet)."""
    path = svc.cfg.data_dir / "traces.db"

    def work() -> Any:
        if not path.exists():
            return empty
        conn = queries.connect(path)
        try:
            return query(conn)
        finally:
            conn.close()

    return await trio.to_thread.run_sync(work)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type=JSON)


def blueprint(svc: RouterServices) -> Blueprint:
    bp = Blueprint("insight", __name__)

    @bp.get("/fleet/analytics/usage")
    async def usage() -> Response:
        days = _days()
        return _json(
            await read_traces(svc, lambda c: queries.usage(c, days), {"days": days, "rows": [], "models": []})
        )

    return bp

"""Fleet insight routes: usage history (`GET /fleet/analytics/usage`), benchmarks (`/fleet/benchmarks`) and
recommendations (`GET /fleet/recommendations`). Thin handlers: validate, then read the trace database in a
worker thread on a read-only connection, or hand over to the benchmark runner / the pure recommender."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio
from quart import Blueprint, Response, request

from herd.dialects.ollama import parse_body
from herd.errors import BadRequest, NoNodeAvailable, NotFound
from herd.insight.bench import priors
from herd.insight.recommend import facts_from, recommend
from herd.insight.runner import BenchRunner
from herd.services import RouterServices
from herd.store import bench_queries, queries

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

    @bp.get("/fleet/recommendations")
    async def recommendations() -> Response:
        days = _days()
        rows, results = await read_traces(
            svc, lambda c: (queries.usage(c, days)["rows"], bench_queries.results(c)), ([], [])
        )
        facts = facts_from(svc.registry.snapshot, rows, priors(results), svc.queue.depths(), days)
        return _json({"days": days, "items": recommend(facts)})

    def runner() -> BenchRunner:
        if svc.bench is None:
            raise NoNodeAvailable("benchmarks are not running in this router")
        return svc.bench

    @bp.post("/fleet/benchmarks")
    async def start_benchmark() -> Response:
        raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        run = runner().submit(parse_body(raw) if raw.strip() else {})
        return _json({"id": run.id, "status": run.status, "steps_total": run.steps_total}, 202)

    @bp.get("/fleet/benchmarks")
    async def list_benchmarks() -> Response:
        live = [r.as_json() for r in sorted(runner().runs.values(), key=lambda r: -r.created)]
        stored = await read_traces(svc, lambda c: bench_queries.runs(c, 20), [])
        seen = {r["id"] for r in live}
        return _json({"runs": live + [r for r in stored if r["id"] not in seen]})

    @bp.get("/fleet/benchmarks/<run_id>")
    async def get_benchmark(run_id: str) -> Response:
        run = runner().runs.get(run_id)
        if run is not None:
            return _json(run.as_json())
        stored = await read_traces(svc, lambda c: bench_queries.runs(c, run_id=run_id), [])
        if not stored:
            raise NotFound(f"no benchmark '{run_id}'", param="id")
        return _json(stored[0])

    @bp.delete("/fleet/benchmarks/<run_id>")
    async def cancel_benchmark(run_id: str) -> Response:
        run = runner().cancel(run_id)
        if run is None:
            raise NotFound(f"no running benchmark '{run_id}'", param="id")
        return _json({"id": run.id, "status": run.status})

    return bp

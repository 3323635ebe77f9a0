"""The benchmark runner: a supervised service (started by `herd.nursery.router`) that runs one benchmark at a
time, queued by `POST /fleet/benchmarks`, through the router's own proxy.

Each request goes to a pinned node (`herd.routing.oneshot.open_pinned`: a slot is counted, no queue, no retry) and
is a low priority guest: before every request the runner asks `bench.yield_reason` and waits, woken by the slots'
pulse, while real requests wait in the holding queue or run on that node. A run's cancel scope ends it at once
(`DELETE /fleet/benchmarks/<id>`); what was measured so far is kept. Progress is published as `benchmark` frames on
the dashboard WebSocket; results go to the trace DB's `bench_results` through its single writer, and to `sinks`
(where the routing performance model takes them as priors)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import trio

from herd.backends.upstream import UpstreamError
from herd.errors import FleetBusy, HerdError
from herd.fleet.registry import Registry
from herd.insight import prompts
from herd.insight.bench import (
    BenchRequest,
    BenchResult,
    Sample,
    parse_request,
    sample_of,
    summarise,
    targets,
    yield_reason,
)
from herd.routing.oneshot import open_pinned
from herd.routing.proxy import Proxy
from herd.routing.queue import HoldingQueue
from herd.routing.slots import Slots
from herd.store.traces import BENCH_RESULTS, BENCH_RUNS

log = logging.getLogger("herd.bench")

FINISHED = ("done", "cancelled", "failed")


def levels(parallel: int) -> tuple[int, ...]:
    return (1,) if parallel == 1 else (1, parallel)


def batch_prompts(parallel: int) -> list[prompts.BenchPrompt]:
    """One request per prompt alone; N requests at once (the prompts in turn) at parallel N."""
    if parallel == 1:
        return list(prompts.PROMPTS)
    return [prompts.PROMPTS[i % len(prompts.PROMPTS)] for i in range(parallel)]


@dataclass
class BenchRun:
    """One benchmark run as the runner tracks it (mutable; `as_json` is what the API and frames show)."""

    id: str
    request: BenchRequest
    targets: list[tuple[str, str]]
    created: float
    status: str = "queued"
    started: float | None = None
    finished: float | None = None
    steps_done: int = 0
    steps_total: int = 0
    current: dict[str, Any] | None = None
    waiting: str | None = None
    error: str | None = None
    results: list[BenchResult] = field(default_factory=list)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    def as_json(self) -> dict[str, Any]:
        total = self.steps_total or 1
        return {
            "id": self.id,
            "status": self.status,
            "prompt_set": prompts.VERSION,
            "parallel": self.request.parallel,
            "targets": [{"node": n, "model": m} for n, m in self.targets],
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "progress": round(self.steps_done / total, 4),
            "steps_done": self.steps_done,
            "steps_total": self.steps_total,
            "current": self.current,
            "waiting": self.waiting,
            "error": self.error,
            "results": [r.as_json() for r in self.results],
        }


class BenchRunner:
    def __init__(
        self,
        registry: Registry,
        slots: Slots,
        queue: HoldingQueue,
        proxy: Proxy,
        *,
        store: Callable[[str, dict[str, Any]], None],
        publish: Callable[[dict[str, Any]], None],  # a run's JSON on every step (the dashboard's frames)
        max_queued: int = 4,
        keep: int = 20,
        history: Callable[[], Iterable[BenchResult]] | None = None,
    ) -> None:
        self.registry, self.slots, self.queue, self.proxy = registry, slots, queue, proxy
        self.store, self.publish, self.keep = store, publish, keep
        self.sinks: list[Callable[[BenchResult], None]] = []  # e.g. the routing performance model's priors
        self.history = history  # blocking: stored results, replayed through the sinks once at start
        self.runs: dict[str, BenchRun] = {}
        self._own: dict[str, int] = {}
        self._send, self._receive = trio.open_memory_channel[BenchRun](max_queued)

    # ------------------------------------------------------------------------------------ called by routes
    def submit(self, body: Any) -> BenchRun:
        """Validate and queue a run (sync: the POST handler answers 202 with its id at once)."""
        req = parse_request(body)
        pairs = targets(self.registry.snapshot, req, self.registry.paused)
        run = BenchRun(uuid.uuid4().hex[:12], req, pairs, time.time())
        run.steps_total = len(pairs) * sum(len(batch_prompts(p)) for p in levels(req.parallel))
        try:
            self._send.send_nowait(run)
        except trio.WouldBlock:
            raise FleetBusy("too many benchmarks queued; try again later", retry_after=60) from None
        self.runs[run.id] = run
        for old in [r for r in self.runs.values() if r.status in FINISHED][
            : max(0, len(self.runs) - self.keep)
        ]:
            del self.runs[old.id]
        self._frame(run)
        return run

    def cancel(self, run_id: str) -> BenchRun | None:
        run = self.runs.get(run_id)
        if run is not None and run.status not in FINISHED:
            run.scope.cancel()  # a queued run is skipped when its turn comes; a running one stops now
            if run.status == "queued":
                self._finish(run, "cancelled")
        return run

    # ------------------------------------------------------------------------------------ the service
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.history is not None:  # earlier runs' results seed the routing model before traffic arrives
            for result in await trio.to_thread.run_sync(lambda: list(self.history() if self.history else ())):
                for sink in self.sinks:
                    sink(result)
            self.history = None  # once per router start, not on a supervised restart
        task_status.started()
        async for run in self._receive:
            if run.status == "queued":
                await self._execute(run)

    async def _execute(self, run: BenchRun) -> None:
        run.status, run.started = "running", time.time()
        self._frame(run)
        status = "done"
        with run.scope:
            try:
                for node_id, model in run.targets:
                    for parallel in levels(run.request.parallel):
                        run.current = {"node": node_id, "model": model, "parallel": parallel}
                        await self._batch(run, node_id, model, parallel)
            except Exception as exc:  # a bug in one run must not leave it "running" forever
                status, run.error = "failed", str(exc)
                log.exception("benchmark %s failed", run.id)
        if run.scope.cancelled_caught:
            status = "cancelled"
        self._finish(run, status)

    def _finish(self, run: BenchRun, status: str) -> None:
        run.status, run.finished, run.current, run.waiting = status, time.time(), None, None
        self.store(
            BENCH_RUNS,
            {
                "id": run.id,
                "created": run.created,
                "finished": run.finished,
                "status": status,
                "prompt_set": prompts.VERSION,
                "parallel": run.request.parallel,
                "request": json.dumps(
                    {
                        "nodes": run.request.nodes,
                        "models": run.request.models,
                        "parallel": run.request.parallel,
                    }
                ),
                "targets": json.dumps(run.targets),
                "error": run.error,
            },
        )
        log.info("benchmark %s %s (%d results)", run.id, status, len(run.results))
        self._frame(run)

    async def _batch(self, run: BenchRun, node_id: str, model: str, parallel: int) -> None:
        spans: list[tuple[float, float]] = []
        samples: list[Sample] = []

        async def one(prompt: prompts.BenchPrompt) -> None:
            await self._wait_turn(run, node_id)
            started = trio.current_time()
            samples.append(await self._request(node_id, model, prompt))
            spans.append((started, trio.current_time()))
            run.steps_done += 1
            self._frame(run)

        if parallel == 1:
            for prompt in batch_prompts(1):
                await one(prompt)
        else:
            async with trio.open_nursery() as nursery:
                for prompt in batch_prompts(parallel):
                    nursery.start_soon(one, prompt)
        node = self.registry.snapshot.nodes.get(node_id)
        hb = node.heartbeat if node else None
        result = summarise(
            node_id,
            model,
            parallel,
            samples,
            max(e for _, e in spans) - min(s for s, _ in spans),
            prompt_set=prompts.VERSION,
            ts=time.time(),
            run_id=run.id,
            backend=hb.backend if hb else "",
            backend_version=hb.backend_version if hb else None,
            cpu_count=hb.host.cpu_count if hb else 0,
            mem_total=hb.host.mem_total if hb else 0,
        )
        run.results.append(result)
        self.store(BENCH_RESULTS, result.as_json())
        for sink in self.sinks:
            sink(result)

    async def _wait_turn(self, run: BenchRun, node_id: str) -> None:
        """Step aside while real traffic needs the fleet (see `bench.yield_reason`)."""
        while True:
            in_flight = {node_id: self.slots.node_total(node_id)}
            reason = yield_reason(sum(self.queue.depths().values()), in_flight, self._own, node_id)
            if reason != run.waiting:
                run.waiting = reason
                self._frame(run)
            if reason is None:
                self._own[node_id] = self._own.get(node_id, 0) + 1  # claimed in the same step as the check
                return
            with trio.move_on_after(1.0):
                await self.slots.pulse.wait()

    async def _request(self, node_id: str, model: str, prompt: prompts.BenchPrompt) -> Sample:
        """One benchmark request on `node_id` (its turn already claimed); errors become failed samples."""
        started = trio.current_time()
        try:
            node = self.registry.snapshot.nodes.get(node_id)
            if node is None or not node.routable:
                return Sample(0.0, error=f"node {node_id} is not serving")
            async with AsyncExitStack() as stack:
                body = json.dumps(prompts.body(model, prompt)).encode()
                opened = await open_pinned(self.proxy, stack, node, model, "/api/chat", body)
                ttft = trio.current_time() - started
                final: dict[str, Any] = {}
                async for line in opened.lines:
                    chunk = json.loads(line)
                    if isinstance(chunk, dict) and chunk.get("error"):
                        raise UpstreamError("backend", str(chunk["error"]))
                    if isinstance(chunk, dict) and chunk.get("done"):
                        final = chunk
            if not final:
                return Sample(ttft, error="the stream ended without a final chunk")
            return sample_of(final, ttft)
        except (HerdError, UpstreamError, ValueError) as exc:
            log.info("benchmark request on %s for %s failed: %s", node_id, model, exc)
            return Sample(trio.current_time() - started, error=str(exc))
        finally:
            self._own[node_id] -= 1

    def _frame(self, run: BenchRun) -> None:
        self.publish(run.as_json())

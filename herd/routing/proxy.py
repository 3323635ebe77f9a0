"""Open a proxied request on the best node: wait for a slot in the holding queue, send, and retry on another
node until the reply commits (`herd.routing.attempt`: its first content, or its end when not streamed). Each
attempt's outcome feeds the breaker and outlier ejection (`herd.routing.verdicts`); ejected nodes are ranked out
unless nothing else could serve. After a restart, a model the fleet remembers waits for its node instead of being
"not found". One-shot calls beside proxied requests (`/api/show`, pinned benchmark requests): `herd.routing.oneshot`.

Called by the inference handlers with the request's exit stack (it lives as long as the whole response), so
the slot and the upstream connection live exactly as long as the client's response: a disconnect, error or
cancel closes both. After `open` returns, nothing has been sent to the client yet; the relays take over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import trio

from herd.backends.upstream import Upstream, UpstreamError
from herd.config import RouterConfig
from herd.errors import (
    FleetBusy,
    FleetStarting,
    HerdError,
    ModelNotFound,
    NoNodeAvailable,
    UpstreamFailed,
    UpstreamStatus,
)
from herd.fleet.registry import Registry
from herd.routing.affinity import AFFINITY_PATHS, AffinityBook, lookup
from herd.routing.affinity import verdict as affinity_verdict
from herd.routing.attempt import Opened, attempt
from herd.routing.autopull import auto_pull
from herd.routing.breaker import Breakers
from herd.routing.choice import decide
from herd.routing.choice import format_headers as score_headers
from herd.routing.dyncontext import ContextBook
from herd.routing.estimate import request_facts
from herd.routing.latency import LatencyBook
from herd.routing.outliers import Outliers
from herd.routing.policies import Plan, body_for, encode
from herd.routing.queue import HoldingQueue
from herd.routing.record import RequestRecord
from herd.routing.score import Candidate, Facts, Scorer
from herd.routing.select import elimination_reasons, no_candidate_error
from herd.routing.slots import Slots
from herd.routing.verdicts import Verdicts
from herd.runtime import RuntimeSettings

log = logging.getLogger("herd.proxy")


class _Exhausted(Exception):
    """Every candidate has been tried."""


def _is_callers_fault(status: int) -> bool:
    """A status every node would repeat (bad option, bad format): pass it on instead of retrying."""
    return 400 <= status < 500 and status not in (404, 408, 429)


class Proxy:
    def __init__(
        self,
        cfg: RouterConfig,
        registry: Registry,
        slots: Slots,
        queue: HoldingQueue,
        breakers: Breakers,
        upstream: Upstream,
        latency: LatencyBook,
        scorer: Scorer,
        settings: RuntimeSettings | None = None,
        contexts: ContextBook | None = None,
        affinity: AffinityBook | None = None,
        outliers: Outliers | None = None,
        starting: Callable[[str], bool] = lambda model: False,
    ) -> None:
        self.cfg = cfg
        self.registry = registry
        self.slots = slots
        self.queue = queue
        self.breakers = breakers
        self.upstream = upstream
        self.latency = latency
        self.scorer = scorer
        self.settings = settings
        self.contexts = contexts  # --dynamic-context
        self.affinity = affinity
        self.outliers = outliers or Outliers()
        self.verdicts = Verdicts(breakers, self.outliers)  # what each attempt's outcome tells them
        self.starting = starting  # warm restart: is `model` still waiting for its remembered nodes?

    def ranked(self, facts: Facts, exclude: set[str] | frozenset[str] = frozenset()) -> list[Candidate]:
        now = trio.current_time()
        broken = self.breakers.open_nodes(now)
        if self.registry.paused:
            broken = broken | self.registry.paused
        ejected = self.outliers.ejected(now)
        if ejected and broken:
            ejected = ejected - broken

        def rank(out: frozenset[str]) -> list[Candidate]:
            return self.scorer.rank(
                self.registry.snapshot,
                facts,
                now=now,
                in_flight=self.slots.in_flight,
                capacity=self.slots.room,
                latency=self.latency.all,
                latency_version=self.latency.version,
                broken=out,
                exclude=exclude,
            )

        ranked = rank(broken | ejected)
        if not ranked and ejected:
            ranked = rank(broken)  # ejected nodes are the only ones left: a degraded answer beats none
        return ranked

    def why_not(self, model: str) -> dict[str, str]:
        snap, broken = self.registry.snapshot, self.breakers.open_nodes(trio.current_time())
        return elimination_reasons(snap, self.scorer.eliminated(snap, model), self.registry.paused, broken)

    def _claim(self, facts: Facts, tried: set[str]) -> tuple[list[Candidate], int] | None:
        """Reserve a slot on the best candidate (sync, so no other task can take it in between), or None to
        keep waiting: every candidate is full, or a hot node will free up sooner than a cold one can load."""
        ranked = self.ranked(facts, tried)
        if not ranked:
            if tried:
                raise _Exhausted
            if self.starting(facts.model):
                return None  # warm restart: wait for its node to report (a heartbeat wakes the queue)
            raise no_candidate_error(
                self.registry.snapshot,
                facts.model,
                self.cfg.fleet.heartbeat_interval,
                facts.needs,
                self.why_not(facts.model),
            )
        best = decide(ranked)
        if best is None:
            return None
        if best is not ranked[0]:
            ranked = [best, *(c for c in ranked if c is not best)]
        return ranked, self.slots.reserve(best.node.node_id, facts.model)

    async def open(
        self,
        stack: AsyncExitStack,
        rec: RequestRecord,
        plan: Plan,
        raw: bytes | None,
        native: dict[str, Any] | None = None,
    ) -> Opened:
        """Serve `plan` on the best node, trying the plan's models in order (fallbacks) when one cannot be
        served at all. `raw` is the caller's body when it can be forwarded byte for byte; `native` the OpenAI
        caller's own body, sent as is (model renamed) when the chosen node speaks OpenAI. Fills the record."""
        first: HerdError | None = None
        auto = self.settings is not None and self.settings.auto_pull and not plan.strict
        if auto and not self.starting(plan.requested):
            with trio.move_on_after(self.cfg.auto_pull_timeout) as pulling:
                await auto_pull(self.registry, self.upstream, plan.requested)
            if pulling.cancelled_caught:
                log.warning("auto-pull of %s did not finish in time", plan.requested)
        if self.contexts is not None:
            plan, rec.num_ctx = self.contexts.plan_for(plan)
            raw = raw if rec.num_ctx is None else None  # the caller's bytes no longer say what is sent
        for model in plan.models:
            try:
                opened = await self._open_model(
                    stack, rec, plan, model, raw if model == plan.requested else None, native
                )
            except (ModelNotFound, NoNodeAvailable, UpstreamFailed) as exc:
                first = first or exc
                if model != plan.models[-1]:
                    log.info("%s cannot be served (%s); falling back", model, exc.message)
                continue
            if model != plan.requested:
                rec.fallback = f"{plan.requested} -> {model}"
            return opened
        assert first is not None
        raise first

    async def _open_model(
        self,
        stack: AsyncExitStack,
        rec: RequestRecord,
        plan: Plan,
        model: str,
        raw: bytes | None,
        native: dict[str, Any] | None,
    ) -> Opened:
        rec.model, path = model, rec.path
        now = trio.current_time()
        cached = None
        if self.affinity is not None and path in AFFINITY_PATHS:
            rec.prefix, cached = lookup(self.affinity, model, plan.body, now)
        facts = request_facts(plan.body, model, plan.needs, self.latency, self.scorer.cfg, cached)
        tried: set[str] = set()
        failures: list[str] = []
        last_status: UpstreamStatus | None = None
        queue_wait = 0.0
        deadline = now + self.cfg.routing.queue_timeout
        hold = now + self.cfg.fleet.heartbeat_interval  # for a remembered node to report
        while len(tried) <= self.cfg.max_retries:
            starting = self.starting(model)
            try:
                (ranked, concurrency), waited = await self.queue.admit(
                    model,
                    lambda: self._claim(facts, tried),
                    until=min(deadline, hold) if starting else deadline,
                    app=rec.app,
                    priority=rec.priority,
                )
            except _Exhausted:
                break
            except FleetBusy:
                if not starting:
                    raise
                if self.starting(model):
                    raise self.starting_error(model) from None
                continue  # its node reported, but every slot is taken: wait on as any request would
            queue_wait += waited
            node = ranked[0].node
            rec.score, rec.candidates = ranked[0].score, score_headers(ranked)
            rec.breakdown = dict(ranked[0].breakdown)
            rec.est_finish = ranked[0].est_wait
            if rec.prefix is not None:
                rec.affinity = affinity_verdict(facts.cached, node.node_id)
            scope = AsyncExitStack()
            stack.push_async_callback(scope.aclose)
            scope.callback(self.slots.release, node.node_id, model)
            rec.concurrency = concurrency
            self.verdicts.start(node.node_id, trio.current_time())
            body, protected = body_for(plan, node, model)
            rec.context_protected = protected
            verdict = False
            try:
                opened = await attempt(
                    self.upstream,
                    self.cfg.upstream,
                    scope,
                    node,
                    model,
                    path,
                    encode(body) if raw is None or protected else raw,
                    native,
                    stream=rec.stream,
                )
                verdict = True
            except UpstreamStatus as exc:
                verdict = True
                self.verdicts.answered(node.node_id, exc.status)
                await scope.aclose()
                if exc.status == 503:
                    # Ollama's "server busy": the node is saturated, not broken. Wait for a slot instead of
                    # retrying into it; the queue's deadline still bounds the whole wait.
                    self.slots.mark_busy(node.node_id, model, self.cfg.routing.busy_backoff)
                    log.info("node %s is busy for %s; waiting for a slot", node.node_id, model)
                    continue
                if _is_callers_fault(exc.status):
                    raise
                last_status = exc
                failures.append(f"{node.node_id}: HTTP {exc.status} {exc.message}")
            except UpstreamError as exc:
                verdict = True
                await scope.aclose()
                self.verdicts.broken(node.node_id, exc.kind)
                failures.append(f"{node.node_id}: {exc}")
            else:
                self.verdicts.committed(node.node_id)
                scope.callback(self.verdicts.settle, node.node_id, rec)
                opened.retries = rec.retries = len(tried)
                opened.queue_wait = rec.queue_wait = queue_wait
                rec.node_id = node.node_id
                rec.ttft = opened.first_byte - rec.started
                return opened
            finally:
                if not verdict:
                    self.verdicts.abandoned(node.node_id)
            tried.add(node.node_id)
            log.warning("attempt %d for %s on %s failed: %s", len(tried), model, node.node_id, failures[-1])
        if last_status is not None and len(failures) == 1:
            raise last_status
        raise UpstreamFailed(
            "every node tried failed before responding: " + "; ".join(failures),
            retry_after=self.cfg.fleet.heartbeat_interval,
        )

    def starting_error(self, model: str) -> FleetStarting:
        return FleetStarting(
            f"herd is starting: the nodes that serve '{model}' have not reported since the router restarted; "
            "retry shortly",
            retry_after=min(2.0, self.cfg.fleet.heartbeat_interval),
        )

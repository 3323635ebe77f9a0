"""Composition root for `herd run`: builds every router component without I/O, then starts them in dependency
order as children of ONE nursery, with hypercorn serving the Quart-Trio app as one more child.

Shutdown is a deadline: `Router.stop()` (SIGTERM/SIGINT) stops accepting, lets in-flight responses finish for
at most `graceful_timeout`, then cancels every other duty.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import trio

from herd.backends.rawhttp import RawUpstream
from herd.backends.upstream import Upstream
from herd.config import RouterConfig
from herd.fleet.memory import FleetMemory
from herd.fleet.registry import Expiry, Registry
from herd.fleet.signing import Verifier
from herd.fleet.trust import FleetGate
from herd.guard.keyfile import ApiKeys, KeyReloader
from herd.guard.origins import OriginPolicy, is_loopback_bind
from herd.guard.rules import Policy
from herd.insight.bench import BenchResult, feed_priors
from herd.insight.runner import BenchRunner
from herd.metrics import Metrics
from herd.nursery.supervise import Supervised
from herd.observe.broadcaster import Broadcaster
from herd.observe.fleet_view import fleet_status
from herd.reqscope import ClientLinks
from herd.routing.affinity import AffinityBook, remember_sink
from herd.routing.breaker import Breakers
from herd.routing.capacity import capacity_in
from herd.routing.duties import PreWarmer, Rebalancer
from herd.routing.dyncontext import ContextBook
from herd.routing.latency import LatencyBook
from herd.routing.nodeauth import SigningUpstream
from herd.routing.policies import PolicyConfig
from herd.routing.proxy import Proxy
from herd.routing.pulse import Pulse
from herd.routing.queue import HoldingQueue
from herd.routing.record import Recorder
from herd.routing.score import Scorer, ScoringConfig
from herd.routing.slots import Slots
from herd.runtime import RuntimeSettings
from herd.services import RouterServices
from herd.store.bench_queries import load_priors
from herd.store.latency import LatencyStore
from herd.store.settings_file import SettingsKeeper
from herd.store.traces import TraceStore
from herd.web.app import create_app
from herd.web.connections import ConnectionBudget, default_budget
from herd.web.fastpath import FastPath
from herd.web.guard import Guard
from herd.web.server import WebServer

log = logging.getLogger("herd.router")

DutyFactory = Callable[[RouterServices, list[str]], Any]


class Router:
    """The whole router as one service. `task_status.started(urls)` once it accepts connections."""

    def __init__(self, cfg: RouterConfig, duties: list[DutyFactory] | None = None) -> None:
        self.cfg = cfg
        rcfg = cfg.routing
        self.pulse = Pulse()
        self.registry = Registry(cfg.fleet, on_swap=self.pulse.fire)
        self.latency = LatencyBook()
        self.slots = Slots(
            self.pulse,
            lambda node_id, model: capacity_in(
                self.registry.snapshot, self.latency, node_id, model, rcfg.default_parallel
            ),
        )
        self.queue = HoldingQueue(
            self.pulse,
            timeout=rcfg.queue_timeout,
            max_depth=rcfg.queue_max_depth,
            weights=dict(rcfg.app_weights),
        )
        self.affinity = AffinityBook() if rcfg.affinity else None
        self.breakers = Breakers(rcfg.breaker_threshold, rcfg.breaker_cooldown)
        self.upstream: Upstream = RawUpstream(cfg.upstream)
        if cfg.trust.token:  # nodes behind an agent's LAN proxy take signed requests only
            self.upstream = SigningUpstream(self.upstream, cfg.trust.token, lambda: self.registry.snapshot)
        self.memory = FleetMemory(
            cfg.data_dir / "fleet.json", self.registry, grace=2 * cfg.fleet.offline_after
        )
        self.contexts = ContextBook() if rcfg.dynamic_context else None
        settings = RuntimeSettings(vram_fallback=rcfg.vram_fallback, aliases=dict(rcfg.aliases))
        self.services = RouterServices(
            cfg=cfg,
            registry=self.registry,
            slots=self.slots,
            queue=self.queue,
            upstream=self.upstream,
            proxy=Proxy(
                cfg,
                self.registry,
                self.slots,
                self.queue,
                self.breakers,
                self.upstream,
                self.latency,
                Scorer(),
                settings,
                contexts=self.contexts,
                affinity=self.affinity,
                starting=self.memory.starting,
            ),
            latency=self.latency,
            recorder=Recorder(self.latency, known=self.registry.serves),
            metrics=Metrics(),
            settings=settings,
            policy=PolicyConfig(
                vram_fallback=rcfg.vram_fallback,
                thinking_multiplier=rcfg.thinking_multiplier,
                thinking_min_predict=rcfg.thinking_min_predict,
                keep_alive=rcfg.keep_alive,
                aliases=settings.aliases,
            ),
            gate=FleetGate(Verifier(cfg.trust.token) if cfg.trust.token else None),
        )
        # The benchmark runner sends through the proxy; it writes to the trace store and the dashboard built
        # below (late-bound). Its single-request results (and, at start, the stored ones) seed the routing
        # performance model as priors until live traffic says otherwise.
        self.bench = BenchRunner(
            self.registry,
            self.slots,
            self.queue,
            self.services.proxy,
            store=lambda table, row: self.traces.offer_row(row, table),
            publish=lambda run: self.broadcaster.on_benchmark(run),
            history=lambda: load_priors(cfg.data_dir / "traces.db").values(),
        )
        self.bench.sinks.append(self._bench_prior)
        self.services = dataclasses.replace(self.services, bench=self.bench)
        if self.affinity is not None:
            self.services.recorder.sinks.append(
                remember_sink(self.affinity, trio.current_time, self.slots.capacity)
            )
        self.broadcaster = Broadcaster(self.registry, lambda: fleet_status(self.services))
        self.services.recorder.sinks.append(self.broadcaster.on_request)
        sec = cfg.security
        self.api_keys = ApiKeys(sec.api_keys, sec.api_keys_file)
        self.key_reloader = KeyReloader(self.api_keys) if sec.api_keys_file else None
        self.links = ClientLinks()  # clients that leave, from the connection layer to the fast path
        self.guard = Guard(
            FastPath(create_app(self.services, self.broadcaster), self.services, self.links),
            Policy(
                origins=OriginPolicy(sec.origins),
                check_host=is_loopback_bind(cfg.host),
                own_names=(sec.hostname,) if sec.hostname else (),
                max_body=cfg.max_body_bytes,
                admin_key=sec.admin_key,
            ),
            self.api_keys,
        )
        self.web = WebServer(
            self.guard,
            host=cfg.host,
            port=cfg.port,
            graceful_timeout=cfg.graceful_timeout,
            access_log=cfg.access_log,
            certfile=cfg.trust.certfile,
            keyfile=cfg.trust.keyfile,
            on_unexpected=self.services.metrics.count_unexpected,
            owned=FastPath.owns,  # the fast path owns its requests' stack and final send
            connections=ConnectionBudget(
                cfg.max_connections or default_budget(), cfg.header_timeout, self.links
            ),
        )
        self.latency_store = LatencyStore(cfg.data_dir / "latency.db", self.latency)
        self.services.recorder.sinks.append(self.latency_store.offer)
        self.traces = TraceStore(
            cfg.data_dir / "traces.db",
            retention_days=cfg.retention_days,
            on_reject=self.services.metrics.count_rejected_row,
        )
        self.services.recorder.sinks.append(self.traces.offer)
        self.services.recorder.sinks.append(self.services.metrics.observe)
        if self.contexts is not None:
            self.services.recorder.sinks.append(self.contexts.observe)
        self.expiry = Expiry(self.registry)
        self.settings_keeper = SettingsKeeper(cfg.data_dir, settings, self.registry)
        self.rebalancer = Rebalancer(self.queue, self.pulse, rcfg.rebalance_interval)
        self.prewarmer = PreWarmer(self.registry, self.queue, self.upstream)
        # Optional duties that need the services and the bound addresses (mDNS advertiser, the local node
        # agent): built once the server is bound, without I/O, then started in order.
        self.duty_factories = duties or []

    def _bench_prior(self, result: BenchResult) -> None:
        if result.parallel == 1:
            feed_priors(self.latency, [result], trio.current_time(), ScoringConfig().explore_samples)

    def stop(self) -> None:
        self.web.stop()

    async def _serve(self, rest: trio.CancelScope, *, task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await self.web.run(task_status=task_status)
        finally:
            rest.cancel()  # the web server is done: the other duties have nothing left to serve

    async def run(self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self._close_upstream)
            async with trio.open_nursery() as nursery:
                await nursery.start(Supervised("latency store", self.latency_store).run)
                await nursery.start(Supervised("trace store", self.traces).run)
                await nursery.start(Supervised("settings keeper", self.settings_keeper).run)
                await nursery.start(Supervised("heartbeat expiry", self.expiry).run)
                await nursery.start(Supervised("fleet memory", self.memory).run)
                await nursery.start(Supervised("rebalancer", self.rebalancer).run)
                await nursery.start(Supervised("pre-warmer", self.prewarmer).run)
                await nursery.start(Supervised("benchmark runner", self.bench).run)
                await nursery.start(Supervised("dashboard broadcaster", self.broadcaster).run)
                if self.key_reloader is not None:  # loads the keys file before the first request
                    await nursery.start(Supervised("API keys reloader", self.key_reloader).run)
                urls: list[str] = await nursery.start(partial(self._serve, nursery.cancel_scope))
                for make in self.duty_factories:
                    duty = make(self.services, urls)
                    await nursery.start(Supervised(type(duty).__name__, duty).run)
                log.info("herd router listening on %s", ", ".join(urls))
                task_status.started(urls)

    async def _close_upstream(self) -> None:
        with trio.move_on_after(2.0) as cs:
            cs.shield = True
            await self.upstream.aclose()

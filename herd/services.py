"""The router's long-lived components, built once by `herd.nursery.router` and handed to the web layer."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from herd.backends.upstream import Upstream
from herd.config import RouterConfig
from herd.fleet.registry import Registry
from herd.fleet.trust import FleetGate
from herd.insight.runner import BenchRunner
from herd.metrics import Metrics
from herd.routing.authoring import BlobBook
from herd.routing.items import RecentItems
from herd.routing.latency import LatencyBook
from herd.routing.policies import PolicyConfig
from herd.routing.proxy import Proxy
from herd.routing.queue import HoldingQueue
from herd.routing.record import Recorder
from herd.routing.slots import Slots
from herd.runtime import RuntimeSettings


@dataclass(frozen=True, slots=True)
class RouterServices:
    cfg: RouterConfig
    registry: Registry
    slots: Slots
    queue: HoldingQueue
    upstream: Upstream
    proxy: Proxy
    latency: LatencyBook
    recorder: Recorder
    policy: PolicyConfig
    metrics: Metrics
    settings: RuntimeSettings
    # Heartbeat trust: fleet-token verifier, node addresses, refusals (herd.fleet.trust).
    gate: FleetGate = field(default_factory=FleetGate)
    bench: BenchRunner | None = None  # the benchmark runner (herd.insight.runner), None in bare test setups
    blobs: BlobBook = field(default_factory=BlobBook)  # where each uploaded blob went (for /api/create)
    items: RecentItems = field(default_factory=RecentItems)  # recent /v1/responses output items, by id

    def policy_now(self) -> PolicyConfig:
        """The policy config with the operator's runtime toggles applied."""
        s = self.settings
        if s.vram_fallback == self.policy.vram_fallback and s.aliases is self.policy.aliases:
            return self.policy
        return replace(self.policy, vram_fallback=s.vram_fallback, aliases=s.aliases)

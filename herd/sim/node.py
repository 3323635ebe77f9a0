"""A simulated LLM node: generation speed, time to first token, parallel slots that slow each other down,
models on disk vs loaded, load time and LRU eviction. Pure state + arithmetic in virtual seconds; the event
loop in `herd.sim.run` drives it. Requests beyond the node's slots wait inside the node, as they do in Ollama.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from herd.fleet.guest import SLOTS, GuestState, Owner
from herd.fleet.heartbeat import Heartbeat, HostStats

GB = 2**30


@dataclass
class SimModel:
    name: str
    size_gb: float
    load_s: float  # seconds to load from disk into memory


@dataclass
class SimRequest:
    rid: int
    model: str
    tokens: int
    arrival: float
    start: float | None = None
    finish: float | None = None
    node: str | None = None
    cold: bool = False
    failed: bool = False
    prompt: int = 0  # prompt tokens (0: prompt evaluation not simulated)
    conv: str | None = None  # conversation: the node's prompt cache holds its last turn
    app: str = "-"
    body: dict[str, Any] | None = None  # a chat body for the router's affinity keys (herd.routing.affinity)
    follow: Callable[[SimRequest, float], SimRequest | None] | None = None  # next request of the same client
    first_token: float | None = None
    cached: int = 0  # prompt tokens the node's cache already held
    concurrency: int = 1


@dataclass
class SimNode:
    node_id: str
    speed: float  # tokens/s for one request alone
    ttft: float  # seconds to first token when hot
    parallel: int
    mem_gb: float
    max_loaded: int
    disk: dict[str, SimModel]
    slowdown: float = 0.35  # each extra concurrent request slows every request by this share
    prompt_rate: float = 0.0  # prompt tokens evaluated per second (0: prompt evaluation costs nothing)
    cache: OrderedDict[str, int] = field(default_factory=OrderedDict)  # conversation -> tokens in a slot
    loaded: list[str] = field(default_factory=list)  # LRU order, most recent last
    loading_until: dict[str, float] = field(default_factory=dict)
    running: list[SimRequest] = field(default_factory=list)
    waiting: deque[SimRequest] = field(default_factory=deque)
    cold_loads: int = 0
    # The machine's owner (herd.sim.owner): load in [0, 1] at a virtual time, which slows generation by up to
    # `owner_slowdown`; the learned week the agent would send, and where virtual time 0 falls in the week (h).
    owner: Callable[[float], float] | None = None
    owner_slowdown: float = 0.6
    week: tuple[float, ...] | None = None
    week_start: float = 0.0

    def service_time(self, req: SimRequest, now: float) -> float:
        """Seconds from start to last token, given the concurrency at start and any load still needed."""
        load = 0.0
        if req.model not in self.loaded:
            load = self.disk[req.model].load_s
            self._load(req.model, now)
            self.cold_loads += 1
            req.cold = True
        elif self.loading_until.get(req.model, 0.0) > now:
            load = self.loading_until[req.model] - now
        concurrency = req.concurrency = len(self.running)  # includes this request
        factor = 1 + self.slowdown * (concurrency - 1)
        speed = self.speed / factor
        prompt_s = 0.0
        if self.prompt_rate and req.prompt:
            held = self.cache.get(req.conv, 0) if req.conv else 0
            req.cached = held if held <= req.prompt else 0
            prompt_s = (req.prompt - req.cached) * factor / self.prompt_rate
        req.first_token = now + load + self.ttft + prompt_s
        if self.owner is None:
            return load + self.ttft + prompt_s + req.tokens / speed
        return self._shared(now + load + self.ttft + prompt_s, req.tokens, speed) - now

    def finished(self, req: SimRequest) -> None:
        """The slot that served `req` now holds its conversation (prompt + answer); one cache per slot."""
        if req.conv and self.prompt_rate:
            self.cache[req.conv] = req.prompt + req.tokens
            self.cache.move_to_end(req.conv)
            while len(self.cache) > self.parallel:
                self.cache.popitem(last=False)

    def _shared(self, t: float, tokens: float, speed: float) -> float:
        """When `tokens` are done from `t` while the owner's load (minute by minute) takes its share."""
        assert self.owner is not None
        while True:
            edge = (math.floor(t / 60) + 1) * 60
            rate = speed * (1 - self.owner_slowdown * self.owner(t))
            if rate * (edge - t) >= tokens:
                return t + tokens / rate
            tokens -= rate * (edge - t)
            t = edge

    def _load(self, model: str, now: float) -> None:
        in_use = {r.model for r in self.running}
        while len(self.loaded) >= self.max_loaded:
            victims = [m for m in self.loaded if m not in in_use]
            if not victims:
                break
            self.loaded.remove(victims[0])
        self.loaded.append(model)
        self.loading_until[model] = now + self.disk[model].load_s

    def touch(self, model: str) -> None:
        if model in self.loaded:
            self.loaded.remove(model)
            self.loaded.append(model)

    def guest(self, now: float) -> GuestState:
        if self.owner is None:
            return GuestState()
        return GuestState(
            owner=Owner(cpu_percent=round(50.0 * self.owner(now), 1), mem_bytes=0),
            capacity=self.week,
            capacity_now=None if self.week is None else (self.week_start + now / 3600) % SLOTS,
        )

    def heartbeat(self, now: float = 0.0) -> Heartbeat:
        used = sum(self.disk[m].size_gb for m in self.loaded)
        return Heartbeat(
            node_id=self.node_id,
            agent_version="sim",
            backend="ollama",
            backend_url=f"http://{self.node_id}.sim:11434",
            backend_up=True,
            backend_version="sim",
            draining=False,
            interval=5.0,
            host=HostStats(
                cpu_count=8,
                mem_total=int(self.mem_gb * GB),
                mem_available=int(max(0.0, self.mem_gb - used) * GB),
                disk_free=500 * GB,
            ),
            models=tuple(
                {"name": m.name, "model": m.name, "size": int(m.size_gb * GB), "details": {"family": "sim"}}
                for m in self.disk.values()
            ),
            loaded=tuple(
                {"name": m, "model": m, "size": int(self.disk[m].size_gb * GB), "context_length": 4096}
                for m in self.loaded
            ),
            parallel=self.parallel,
            guest=self.guest(now),
        )

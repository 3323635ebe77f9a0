"""The simulation loop: arrivals (Poisson over a mixed fleet by default, or a scenario's own workload of
clients, `herd.sim.scenarios`) in virtual time, driven by an event heap. Deterministic for a seed; a few seconds
of CPU for thousands of requests. Requests the policy holds wait in the router's queue per model: FIFO, or in
fair-share order across apps (`herd.routing.fairshare.FairOrder`) with `fair=True`. `bench/routing.py` runs the
scenarios through every policy and reports latency, time to first token, waits per app, cold loads, failures."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from herd.fleet.state import FleetSnapshot, apply_heartbeat
from herd.routing.fairshare import FairOrder
from herd.routing.latency import LatencyBook
from herd.sim.node import SimModel, SimNode, SimRequest
from herd.sim.policies import Policy


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int = 1
    rate: float = 0.5  # requests per second
    duration: float = 3600.0  # seconds of arrivals
    tokens: tuple[int, int] = (100, 400)
    popularity: tuple[tuple[str, float], ...] = ()
    queue_timeout: float = 30.0  # a request held this long in the router's queue fails (429)
    model_tokens: tuple[tuple[str, tuple[int, int]], ...] = ()  # per-model output lengths instead of `tokens`
    fleet: Callable[[], list[SimNode]] | None = None  # the scenario's own nodes (default: the mixed fleet)
    workload: Callable[[random.Random], list[SimRequest]] | None = None  # first requests (default: Poisson)

    def arrivals(self, rng: random.Random) -> list[SimRequest]:
        if self.workload is not None:
            return self.workload(rng)
        names = [m for m, _ in self.popularity]
        weights = [w for _, w in self.popularity]
        out: list[SimRequest] = []
        t = 0.0
        while True:
            t += rng.expovariate(self.rate)
            if t > self.duration:
                return out
            model = rng.choices(names, weights)[0]
            tokens = rng.randint(*dict(self.model_tokens).get(model, self.tokens))
            out.append(SimRequest(len(out), model, tokens, t))

    def nodes(self) -> list[SimNode]:
        if self.fleet is not None:
            return self.fleet()
        models = {
            "llama3.1:8b": SimModel("llama3.1:8b", 5, 12.0),
            "qwen3:8b": SimModel("qwen3:8b", 5, 12.0),
            "phi4:14b": SimModel("phi4:14b", 9, 20.0),
            "gemma3:4b": SimModel("gemma3:4b", 3, 6.0),
        }
        return [
            SimNode(
                "gpu-a",
                speed=80,
                ttft=0.2,
                parallel=4,
                mem_gb=48,
                max_loaded=2,
                disk=dict(models),
                loaded=["llama3.1:8b", "qwen3:8b"],
            ),
            SimNode(
                "gpu-b",
                speed=60,
                ttft=0.3,
                parallel=2,
                mem_gb=24,
                max_loaded=2,
                disk=dict(models),
                loaded=["phi4:14b"],
            ),
            SimNode(
                "mac-c",
                speed=30,
                ttft=0.5,
                parallel=2,
                mem_gb=16,
                max_loaded=1,
                disk=dict(models),
                loaded=["gemma3:4b"],
            ),
            SimNode(
                "mac-d",
                speed=15,
                ttft=0.8,
                parallel=1,
                mem_gb=16,
                max_loaded=1,
                disk=dict(models),
                loaded=["llama3.1:8b"],
            ),
        ]


MIXED = Scenario(
    "mixed fleet: fast and slow nodes, models hot on some and cold on others, few parallel slots",
    popularity=(("llama3.1:8b", 0.45), ("qwen3:8b", 0.25), ("phi4:14b", 0.15), ("gemma3:4b", 0.15)),
    rate=0.7,
    duration=1800.0,
)


@dataclass
class Result:
    policy: str
    latencies: list[float] = field(default_factory=list)
    cold_loads: int = 0
    failures: int = 0
    requests: int = 0
    done: list[SimRequest] = field(default_factory=list)

    def pct(self, q: float, values: list[float] | None = None) -> float:
        data = sorted(self.latencies if values is None else values)
        return data[min(len(data) - 1, int(q * len(data)))] if data else 0.0

    def ttfts(self) -> list[float]:
        return [r.first_token - r.arrival for r in self.done if r.first_token is not None]

    def waits(self, app: str) -> list[float]:
        """Arrival to start of service (router queue + node queue) of `app`'s requests."""
        return [r.start - r.arrival for r in self.done if r.app == app and r.start is not None]

    def makespan(self, app: str) -> float:
        return max((r.finish or 0.0 for r in self.done if r.app == app), default=0.0)


def simulate(scenario: Scenario, policy: Policy, *, fair: bool = False) -> Result:
    rng = random.Random(scenario.seed)
    nodes = {n.node_id: n for n in scenario.nodes()}
    bind = getattr(policy, "bind", None)
    if bind is not None:
        bind(nodes)
    events: list[tuple[float, int, str, SimRequest]] = []
    seq = 0
    first = scenario.arrivals(rng)
    for req in first:
        heapq.heappush(events, (req.arrival, seq, "arrive", req))
        seq += 1
    result = Result(policy.name, requests=len(first))
    queues: dict[str, FairOrder[SimRequest]] = {}
    in_flight: dict[tuple[str, str], int] = {}
    book = LatencyBook()

    def snapshot(now: float) -> FleetSnapshot:
        snap = FleetSnapshot()
        for node in nodes.values():
            snap = apply_heartbeat(snap, node.heartbeat(now), 0.0)
        return snap

    def choose(req: SimRequest, now: float) -> str | None:
        return policy.choose(snapshot(now), req.model, in_flight, book, now, req=req)

    def start(node: SimNode, req: SimRequest, now: float) -> None:
        nonlocal seq
        node.running.append(req)
        req.start = now
        heapq.heappush(events, (now + node.service_time(req, now), seq, "finish", req))
        seq += 1

    def dispatch(node_id: str, req: SimRequest, now: float) -> None:
        node = nodes[node_id]
        req.node = node_id
        key = (node_id, req.model)
        in_flight[key] = in_flight.get(key, 0) + 1
        node.touch(req.model)
        if len(node.running) < node.parallel:
            start(node, req, now)
        else:
            node.waiting.append(req)

    def hold(req: SimRequest) -> None:
        # FIFO: every request counts as one app; fair: the request's app
        queues.setdefault(req.model, FairOrder()).add(req, req.app if fair else "-")

    def drain_queues(now: float) -> None:
        for queue in queues.values():
            while (head := queue.head()) is not None:
                if now - head.arrival > scenario.queue_timeout:
                    queue.remove(head, served=False)
                    head.failed = True
                    result.failures += 1
                    continue
                choice = choose(head, now)
                if choice is None:
                    break
                queue.remove(head, served=True)
                dispatch(choice, head, now)

    def arrive(req: SimRequest, now: float) -> None:
        if len(queues.get(req.model) or ()):
            hold(req)
            return
        choice = choose(req, now)
        if choice is None:
            hold(req)
        else:
            dispatch(choice, req, now)

    while events:
        now, _, kind, req = heapq.heappop(events)
        if kind == "arrive":
            arrive(req, now)
        else:
            assert req.node is not None and req.start is not None and req.first_token is not None
            node = nodes[req.node]
            node.running.remove(req)
            node.finished(req)
            in_flight[(req.node, req.model)] -= 1
            req.finish = now
            result.latencies.append(now - req.arrival)
            result.done.append(req)
            served = now - req.start
            gen_s = now - req.first_token
            load_s = node.disk[req.model].load_s if req.cold else 0.0
            book.observe(
                req.node,
                req.model,
                req.first_token - req.start,
                req.tokens / served,
                served,
                req.concurrency,
                at=now,
                prompt_tokens=req.prompt - req.cached,
                prompt_s=max(0.0, req.first_token - req.start - node.ttft - load_s),
                completion_tokens=req.tokens,
                gen_s=gen_s,
                load_s=load_s,
            )
            for listener in getattr(policy, "listeners", ()):
                listener(req, now)
            if node.waiting:
                start(node, node.waiting.popleft(), now)
            nxt = req.follow(req, now) if req.follow is not None else None
            if nxt is not None:
                result.requests += 1
                heapq.heappush(events, (nxt.arrival, seq, "arrive", nxt))
                seq += 1
        drain_queues(now)
        if not events:  # requests still held when nothing else will happen have timed out
            for queue in queues.values():
                result.failures += len(queue)
            queues.clear()
    result.cold_loads = sum(n.cold_loads for n in nodes.values())
    return result

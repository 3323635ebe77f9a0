"""The simulation loop: Poisson arrivals over a mixed fleet, in virtual time, driven by an event heap.
Deterministic for a seed; a few seconds of CPU for thousands of requests. `bench/routing.py` runs one scenario
through every policy and reports p50/p99 latency, cold loads and failures."""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field

from herd.fleet.state import FleetSnapshot, apply_heartbeat
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

    def nodes(self) -> list[SimNode]:
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
    served: list[SimRequest] = field(default_factory=list)

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] if data else 0.0


def simulate(scenario: Scenario, policy: Policy) -> Result:
    rng = random.Random(scenario.seed)
    nodes = {n.node_id: n for n in scenario.nodes()}
    names = [m for m, _ in scenario.popularity]
    weights = [w for _, w in scenario.popularity]
    events: list[tuple[float, int, str, SimRequest]] = []
    seq = 0
    t, rid = 0.0, 0
    while True:
        t += rng.expovariate(scenario.rate)
        if t > scenario.duration:
            break
        model = rng.choices(names, weights)[0]
        req = SimRequest(rid, model, rng.randint(*dict(scenario.model_tokens).get(model, scenario.tokens)), t)
        heapq.heappush(events, (t, seq, "arrive", req))
        seq, rid = seq + 1, rid + 1
    result = Result(policy.name, requests=rid)
    queues: dict[str, deque[SimRequest]] = {m: deque() for m in names}
    in_flight: dict[tuple[str, str], int] = {}
    book = LatencyBook()

    def snapshot(now: float) -> FleetSnapshot:
        snap = FleetSnapshot()
        for node in nodes.values():
            snap = apply_heartbeat(snap, node.heartbeat(now), 0.0)
        return snap

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

    def drain_queues(now: float) -> None:
        for model, queue in queues.items():
            while queue:
                head = queue[0]
                if now - head.arrival > scenario.queue_timeout:
                    queue.popleft().failed = True
                    result.failures += 1
                    continue
                choice = policy.choose(snapshot(now), model, in_flight, book, now)
                if choice is None:
                    break
                dispatch(choice, queue.popleft(), now)

    while events:
        now, _, kind, req = heapq.heappop(events)
        if kind == "arrive":
            if queues[req.model]:
                queues[req.model].append(req)
            else:
                choice = policy.choose(snapshot(now), req.model, in_flight, book, now)
                if choice is None:
                    queues[req.model].append(req)
                else:
                    dispatch(choice, req, now)
        else:
            assert req.node is not None and req.start is not None
            node = nodes[req.node]
            concurrency = len(node.running)
            node.running.remove(req)
            key = (req.node, req.model)
            in_flight[key] -= 1
            req.finish = now
            result.latencies.append(now - req.arrival)
            result.served.append(req)
            served = now - req.start
            book.observe(req.node, req.model, node.ttft, req.tokens / served, served, concurrency)
            if node.waiting:
                start(node, node.waiting.popleft(), now)
        drain_queues(now)
        if not events:  # requests still held when nothing else will happen have timed out
            for queue in queues.values():
                result.failures += len(queue)
                queue.clear()
    result.cold_loads = sum(n.cold_loads for n in nodes.values())
    return result

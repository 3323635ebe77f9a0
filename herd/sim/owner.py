"""A fleet with an owner (the good-guest scenario): one fast machine whose owner works on it every weekday
9-17, with breaks, beside two spare machines; short chat requests and long reasoning ones from 06:00 to
20:00 on a Monday. The owner's machine reports its owner's live load, and the week its capacity learner
(`herd.node.capacity`) learned over two earlier weeks. `bench/routing.py --owner` compares the scorer
without the good-guest signals, with only the live load (strain), and with the learned week (outlook): how
much long work lands on the owner's machine during office hours, and what it costs the requests."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from herd.node.capacity import CapacityLearner
from herd.routing.score import ScoringConfig, Weights
from herd.sim.node import SimModel, SimNode, SimRequest
from herd.sim.policies import Herd
from herd.sim.run import Scenario, simulate

HOUR = 3600.0
START = 6.0  # virtual time 0 is Monday 06:00
LONG = "deepseek-r1:8b"
OWNER_NODE = "office-mac"


@dataclass(frozen=True)
class OfficeHours:
    """Busy (0.9) weekdays 9-17 except a random quarter of the ten-minute blocks (breaks, meetings elsewhere),
    light (0.05) otherwise. `at` takes hours since Monday 00:00."""

    seed: int = 7
    busy: float = 0.9
    idle: float = 0.05
    breaks: float = 0.25

    def at(self, week_hours: float) -> float:
        day, hour = int(week_hours // 24) % 7, week_hours % 24
        if day >= 5 or not 9 <= hour < 17:
            return self.idle
        block = int(week_hours * 6)
        return self.idle if random.Random(self.seed * 1_000_003 + block).random() < self.breaks else self.busy


def learned_week(hours: OfficeHours, weeks: int = 2, step: float = 300.0) -> tuple[float, ...]:
    """What the agent's learner holds after `weeks` of samples every `step` seconds."""
    learner = CapacityLearner()
    t = 0.0
    while t < weeks * 168 * HOUR:
        learner.observe(t, 0.0, min(1.0, hours.at((t / HOUR + 72.0) % 168)))  # epoch 0 is Thursday 00:00
        t += step
    return learner.week()


@dataclass(frozen=True)
class OwnerScenario(Scenario):
    hours: OfficeHours = field(default_factory=OfficeHours)
    learned: bool = True

    def nodes(self) -> list[SimNode]:
        models = {"llama3.1:8b": SimModel("llama3.1:8b", 5, 12.0), LONG: SimModel(LONG, 5, 12.0)}
        hours = self.hours
        owner = SimNode(
            OWNER_NODE,
            speed=60,
            ttft=0.2,
            parallel=2,
            mem_gb=64,
            max_loaded=2,
            disk=dict(models),
            loaded=list(models),
            owner=lambda t: hours.at(START + t / HOUR),
            week=learned_week(hours) if self.learned else None,
            week_start=START,
        )
        spares = [
            SimNode(
                name,
                speed=40,
                ttft=0.3,
                parallel=2,
                mem_gb=32,
                max_loaded=2,
                disk=dict(models),
                loaded=list(models),
            )
            for name in ("spare-a", "spare-b")
        ]
        return [owner, *spares]


OWNER = OwnerScenario(
    "owner at work: a fast machine used by its owner weekdays 9-17 beside two spares, Monday 06:00-20:00",
    rate=0.02,
    duration=14 * HOUR,
    popularity=(("llama3.1:8b", 0.8), (LONG, 0.2)),
    tokens=(100, 400),
    model_tokens=((LONG, (3000, 8000)),),
    queue_timeout=600.0,
)


@dataclass
class OwnerFigures:
    policy: str
    long_in_hours: int = 0  # long requests started 9-17
    long_on_owner_in_hours: int = 0
    long_outside: int = 0
    long_on_owner_outside: int = 0
    long_latencies: list[float] = field(default_factory=list)
    short_latencies: list[float] = field(default_factory=list)

    @property
    def share_in_hours(self) -> float:
        return self.long_on_owner_in_hours / max(1, self.long_in_hours)

    @property
    def share_outside(self) -> float:
        return self.long_on_owner_outside / max(1, self.long_outside)


def pct(data: list[float], q: float) -> float:
    data = sorted(data)
    return data[min(len(data) - 1, int(q * len(data)))] if data else 0.0


def figures(policy: str, served: list[SimRequest]) -> OwnerFigures:
    out = OwnerFigures(policy)
    for req in served:
        assert req.start is not None and req.finish is not None
        if req.model != LONG:
            out.short_latencies.append(req.finish - req.arrival)
            continue
        out.long_latencies.append(req.finish - req.arrival)
        on_owner = req.node == OWNER_NODE
        if 9 <= START + req.start / HOUR < 17:
            out.long_in_hours += 1
            out.long_on_owner_in_hours += on_owner
        else:
            out.long_outside += 1
            out.long_on_owner_outside += on_owner
    return out


POLICIES = (
    ("herd without guest signals", Weights(strain=0.0, outlook=0.0)),
    ("herd + live owner load (strain)", Weights(outlook=0.0)),
    ("herd + learned week (strain + outlook)", Weights()),
)


def run_owner(seed: int) -> list[OwnerFigures]:
    out = []
    for name, weights in POLICIES:
        result = simulate(replace(OWNER, seed=seed), Herd(ScoringConfig(weights=weights), name=name))
        out.append(figures(name, result.done))
    return out

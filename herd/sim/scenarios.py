"""Scenarios for routing judgement (issue 12), each a `Scenario` with its own fleet and workload of clients,
run by `herd.sim.run.simulate` and reported by `bench/routing.py`:

- `HETERO` (a): nodes 1x / 2x / 4x in speed, the model hot everywhere, low load: `clients` clients each
  sending requests one after another (a short pause between). Against an oracle that picks the fastest free
  node knowing the true speeds.
- `MULTITURN` (b): 8 users x 6 turns; each conversation opens with its own ~800-token document and grows each
  turn; nodes evaluate prompts at a finite rate and keep one conversation's prompt per slot. Time to first
  token is what matters.
- `FLOOD` (c): one app sends 200 requests at once while another sends one every 2 s; the light app's wait
  and the flood's throughput, FIFO against fair share.
"""

from __future__ import annotations

import random
from dataclasses import replace
from functools import partial
from typing import Any

from herd.sim.node import SimModel, SimNode, SimRequest
from herd.sim.run import Scenario

MODEL = "llama3.1:8b"
_MODELS = {MODEL: SimModel(MODEL, 5, 12.0)}


def _node(node_id: str, speed: float, **kw: Any) -> SimNode:
    base: dict[str, Any] = dict(
        ttft=0.2, parallel=4, mem_gb=32, max_loaded=1, disk=dict(_MODELS), loaded=[MODEL]
    )
    base.update(kw)
    return SimNode(node_id, speed=speed, **base)


# -- (a) heterogeneous speeds ----------------------------------------------------------------------------


def _hetero_fleet() -> list[SimNode]:
    # the fastest node's id sorts last: a router that falls back to the node id picks the slowest
    return [_node("a-1x", 15.0), _node("b-2x", 30.0), _node("c-4x", 60.0)]


def _sequential(rng: random.Random, clients: int, per_client: int) -> list[SimRequest]:
    counter = iter(range(10**9))

    def make(app: str, left: int, at: float) -> SimRequest:
        follow = partial(after, app, left - 1) if left > 1 else None
        return SimRequest(next(counter), MODEL, rng.randint(100, 300), at, app=app, follow=follow)

    def after(app: str, left: int, done: SimRequest, now: float) -> SimRequest:
        return make(app, left, now + rng.uniform(0.5, 2.0))

    return [make(f"client{c}", per_client, rng.uniform(0, 2)) for c in range(clients)]


def hetero(clients: int, seed: int = 1) -> Scenario:
    return Scenario(
        f"(a) heterogeneous speeds 1x/2x/4x, all hot, {clients} client(s) back to back",
        seed=seed,
        fleet=_hetero_fleet,
        workload=partial(_sequential, clients=clients, per_client=150),
    )


# -- (b) multi-turn chats --------------------------------------------------------------------------------


def _chat_fleet() -> list[SimNode]:
    return [_node(f"n{i}", 30.0, prompt_rate=400.0, ttft=0.1) for i in range(1, 4)]


def _text(tag: str, tokens: int) -> str:
    return (tag + " ") + "x" * max(0, tokens * 4 - len(tag) - 1)


def _conversations(rng: random.Random, users: int, turns: int) -> list[SimRequest]:
    counter = iter(range(10**9))

    def make(conv: str, history: list[dict[str, str]], turn: int, at: float) -> SimRequest:
        messages = [*history, {"role": "user", "content": _text(f"{conv}-q{turn}", rng.randint(20, 60))}]
        body = {"messages": messages}
        prompt = sum(len(m["content"]) for m in messages) // 4
        req = SimRequest(
            next(counter), MODEL, rng.randint(80, 200), at, prompt=prompt, conv=conv, app=conv, body=body
        )
        if turn + 1 < turns:
            req.follow = partial(after, conv, messages, turn + 1)
        return req

    def after(
        conv: str, messages: list[dict[str, str]], turn: int, done: SimRequest, now: float
    ) -> SimRequest:
        answer = {"role": "assistant", "content": _text(f"{conv}-a{turn}", done.tokens)}
        return make(conv, [*messages, answer], turn, now + rng.uniform(3.0, 12.0))

    out = []
    for u in range(users):
        conv = f"user{u}"
        document = [{"role": "system", "content": _text(f"{conv}-doc", rng.randint(700, 900))}]
        out.append(make(conv, document, 0, rng.uniform(0, 20)))
    return out


MULTITURN = Scenario(
    "(b) multi-turn chats: 8 users x 6 turns, ~800-token document each, 3 equal nodes with prompt caches",
    fleet=_chat_fleet,
    workload=partial(_conversations, users=8, turns=6),
)


# -- (c) one app floods --------------------------------------------------------------------------------


def _flood_fleet() -> list[SimNode]:
    return [_node(f"n{i}", 100.0, parallel=2) for i in range(1, 5)]


def _flood(rng: random.Random, flood: int, light_every: float) -> list[SimRequest]:
    out = [SimRequest(i, MODEL, rng.randint(50, 100), rng.uniform(0, 1), app="flood") for i in range(flood)]
    # the light app keeps sending while the flood lasts (~ flood x service time / slots)
    t, horizon = 2.0, flood * (0.2 + 75 / 100 * 1.35) / 8
    while t < horizon:
        out.append(SimRequest(len(out), MODEL, rng.randint(50, 100), t, app="light"))
        t += light_every
    return out


FLOOD = Scenario(
    "(c) one app floods 200 requests while another sends one every 2 s (4 nodes x 2 slots)",
    fleet=_flood_fleet,
    workload=partial(_flood, flood=200, light_every=2.0),
    queue_timeout=1e9,
)


def seeded(scenario: Scenario, seed: int) -> Scenario:
    return replace(scenario, seed=seed)

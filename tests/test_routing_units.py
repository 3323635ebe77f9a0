"""Holding queue, breakers, capacity and pre-warm decisions: unit tests on the autojump clock."""

from __future__ import annotations

import pytest
import trio
from conftest import heartbeat_json

from herd.errors import FleetBusy, ModelNotFound
from herd.fleet.heartbeat import parse_heartbeat
from herd.fleet.state import FleetSnapshot, apply_heartbeat
from herd.routing import breaker
from herd.routing.breaker import Breakers
from herd.routing.capacity import node_capacity
from herd.routing.duties import Rebalancer, prewarm_targets
from herd.routing.latency import LatencyBook, effective_parallel
from herd.routing.pulse import Pulse
from herd.routing.queue import HoldingQueue
from herd.routing.slots import Slots


def snap_of(*beats: dict) -> FleetSnapshot:
    snap = FleetSnapshot()
    for b in beats:
        snap = apply_heartbeat(snap, parse_heartbeat(b), 0.0)
    return snap


async def test_queue_is_fifo_per_model_and_bounded_in_time(autojump_clock: trio.testing.MockClock) -> None:
    pulse = Pulse()
    slots = Slots(pulse, lambda n, m: 1)
    queue = HoldingQueue(pulse, timeout=30, max_depth=10)
    order: list[int] = []

    def claim() -> str | None:
        if slots.has_room("n", "m"):
            slots.reserve("n", "m")
            return "n"
        return None

    async def client(i: int) -> None:
        node, _ = await queue.admit("m", claim)
        order.append(i)
        await trio.sleep(1)
        slots.release(node, "m")

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(client, i)
            await trio.sleep(0.01)
        await trio.sleep(0.1)
        assert queue.depth("m") == 4 and [s.depth for s in queue.stats()] == [4]
    assert order == [0, 1, 2, 3, 4]
    assert queue.depth("m") == 0 and slots.total() == 0

    slots.reserve("n", "m")  # full forever
    start = trio.current_time()
    with pytest.raises(FleetBusy) as info:
        await queue.admit("m", claim)
    assert info.value.status == 429 and info.value.retry_after
    assert trio.current_time() - start == pytest.approx(30)
    assert queue.depth("m") == 0


async def test_queue_depth_limit_and_never_servable(autojump_clock: trio.testing.MockClock) -> None:
    pulse = Pulse()
    queue = HoldingQueue(pulse, timeout=30, max_depth=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.admit, "m", lambda: None)
        await trio.sleep(1)
        with pytest.raises(FleetBusy):
            await queue.admit("m", lambda: None)
        nursery.cancel_scope.cancel()
    assert queue.depth("m") == 0  # a cancelled waiter leaves nothing behind

    def never() -> None:
        raise ModelNotFound("gone")

    with pytest.raises(ModelNotFound):
        await queue.admit("x", never)


async def test_busy_marks_full_for_a_while(autojump_clock: trio.testing.MockClock) -> None:
    slots = Slots(Pulse(), lambda n, m: 4)
    slots.mark_busy("n", "m", 2.0)
    assert not slots.has_room("n", "m")
    await trio.sleep(2.1)
    assert slots.has_room("n", "m")


def test_breaker_opens_half_opens_and_closes() -> None:
    b = Breakers(threshold=3, cooldown=10)
    for t in range(3):
        assert b.allows("n", t)
        b.failure("n", float(t))
    assert not b.allows("n", 5.0) and b.open_nodes(5.0) == {"n"}
    assert b.allows("n", 12.1)  # cooldown over: one probe may go
    b.attempt("n", 12.1)
    assert not b.allows("n", 12.2)  # only one probe at a time
    b.failure("n", 12.5)  # the probe failed: open again
    assert not b.allows("n", 20.0) and b.allows("n", 22.6)
    b.attempt("n", 22.6)
    b.success("n")
    assert b.allows("n", 22.7) and b.state("n") == breaker.CLOSED


def test_capacity_from_heartbeat_and_memory_pressure() -> None:
    snap = snap_of(
        heartbeat_json("a", "http://a:1", ["m"], parallel=3),
        heartbeat_json("b", "http://b:1", ["m"]),
        heartbeat_json(
            "c",
            "http://c:1",
            ["m"],
            parallel=8,
            host={"mem_total": 100, "mem_available": 5, "load": [0, 0, 0]},
        ),
    )
    assert [node_capacity(snap.nodes[n], 4) for n in "abc"] == [3, 4, 1]
    # throughput stops growing past 2 at once: the node serialises, so 2 slots it is
    assert node_capacity(snap.nodes["b"], 4, {1: 40.0, 2: 30.0, 3: 19.0}) == 2
    assert node_capacity(snap.nodes["b"], 4, {1: 40.0, 2: 30.0, 3: 25.0, 4: 20.0}) == 4


def test_prewarm_targets_pick_the_roomiest_cold_node() -> None:
    def beat(node: str, avail: int, loaded: list[str]) -> dict:
        return heartbeat_json(
            node,
            f"http://{node}:1",
            ["m:latest"],
            loaded,
            host={"mem_total": 100, "mem_available": avail, "load": [0, 0, 0]},
        )

    snap = snap_of(beat("hot", 10, ["m:latest"]), beat("small", 20, []), beat("big", 80, []))
    assert prewarm_targets(snap, {"m:latest": 1}, {}, 0.0, threshold=2, cooldown=60) == []
    assert prewarm_targets(snap, {"m:latest": 3}, {}, 0.0, threshold=2, cooldown=60) == [("big", "m:latest")]
    warming = {("big", "m:latest"): 0.0}
    assert prewarm_targets(snap, {"m:latest": 3}, warming, 30.0, threshold=2, cooldown=60) == [
        ("small", "m:latest")
    ]


async def test_rebalancer_pulses_only_while_requests_wait(autojump_clock: trio.testing.MockClock) -> None:
    pulse = Pulse()
    queue = HoldingQueue(pulse, timeout=300, max_depth=10)
    reb = Rebalancer(queue, pulse, interval=5)
    async with trio.open_nursery() as nursery:
        await nursery.start(reb.run)
        await trio.sleep(12)
        assert reb.ticks == 0
        nursery.start_soon(queue.admit, "m", lambda: None)
        await trio.sleep(11)
        assert reb.ticks == 2
        nursery.cancel_scope.cancel()


def test_effective_parallel_and_speed_by_concurrency() -> None:
    book = LatencyBook()
    for tps, conc in [(40, 1), (42, 1), (21, 2), (20, 2)]:
        book.observe("n", "m", 0.1, tps, 1.0, conc)
    assert book.speed_by_concurrency("n", "m") == {1: 42, 2: 21}
    assert effective_parallel(book.speed_by_concurrency("n", "m"), 4) == 1  # 2 x 21 is no gain over 42
    assert effective_parallel({}, 4) == 4 and effective_parallel({1: 10.0}, 1) == 1


def test_latency_book_p75() -> None:
    book = LatencyBook(window=4)
    for ttft, tps, dur in [(0.1, 50, 1), (0.2, 40, 2), (0.3, 30, 3), (0.4, 20, 4), (0.5, 10, 5)]:
        book.observe("n", "m", ttft, tps, dur)
    stats = book.stats("n", "m")
    assert stats is not None and stats.n == 4
    assert stats.ttft_s == 0.5 and stats.duration_s == 5 and stats.tokens_per_s == 20
    assert book.model_duration("m") == 5 and book.model_duration("x") is None


def test_an_abandoned_probe_lets_the_next_request_probe() -> None:
    b = Breakers(threshold=1, cooldown=10)
    b.failure("n", 0.0)
    b.attempt("n", 11.0)
    assert not b.allows("n", 11.5)  # one probe in flight
    b.abandon("n")  # the client left before the node answered
    assert b.allows("n", 11.6) and b.state("n").opened_at == 0.0

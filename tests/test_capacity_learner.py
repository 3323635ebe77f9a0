"""The capacity learner on virtual time: two simulated weeks of an owner busy every weekday 9-17, the decay
that lets a changed routine show, the file in the data dir, and the agent's reporter on trio's autojump clock."""

from __future__ import annotations

import json
from pathlib import Path

import trio
import trio.testing

from herd.fleet.guest import SLOTS, GuestState, Owner
from herd.fleet.heartbeat import HostStats
from herd.node import capacity
from herd.node.capacity import CapacityLearner, load_file, save_file, week_position
from herd.node.guest import GuestReporter

MONDAY = 1_763_942_400.0  # 2025-11-24 00:00 UTC, a Monday
HOUR = 3600.0
STEP = 300.0  # one sample every five minutes


def office_hours(epoch: float, offset: float = 0.0) -> float:
    pos = week_position(epoch, offset)
    day, hour = int(pos // 24), pos % 24
    return 0.9 if day < 5 and 9 <= hour < 17 else 0.05


def slot(day: int, hour: int) -> int:
    return day * 24 + hour


def test_week_position() -> None:
    assert week_position(MONDAY, 0.0) == 0.0
    assert week_position(MONDAY + 9.5 * HOUR, 0.0) == 9.5
    assert week_position(MONDAY - HOUR, 0.0) == 167.0  # Sunday 23:00
    # the owner's local time: 08:00 UTC is 09:00 in UTC+1
    assert week_position(MONDAY + 8 * HOUR, 3600.0) == 9.0


def test_two_weeks_of_office_hours() -> None:
    learner = CapacityLearner()
    t = MONDAY
    while t < MONDAY + 14 * 24 * HOUR:
        learner.observe(t, 0.0, office_hours(t))
        t += STEP
    week = learner.week()
    assert len(week) == SLOTS
    for day in range(5):
        assert all(week[slot(day, h)] > 0.85 for h in range(9, 17)), day
        assert all(week[slot(day, h)] < 0.1 for h in (0, 7, 8, 17, 20))
    assert all(week[slot(d, h)] < 0.1 for d in (5, 6) for h in range(24))
    # in the owner's time zone the same routine lands on the same slots
    shifted = CapacityLearner()
    t = MONDAY
    while t < MONDAY + 14 * 24 * HOUR:
        shifted.observe(t, -5 * HOUR, office_hours(t, -5 * HOUR))
        t += STEP
    assert shifted.week() == week


def test_a_changed_routine_shows_within_two_weeks() -> None:
    learner = CapacityLearner()
    t = MONDAY
    while t < MONDAY + 14 * 24 * HOUR:
        learner.observe(t, 0.0, office_hours(t))
        t += STEP
    before = learner.week()[slot(0, 10)]
    while t < MONDAY + 28 * 24 * HOUR:  # the owner stops using the machine
        learner.observe(t, 0.0, 0.05)
        t += STEP
    after = learner.week()[slot(0, 10)]
    assert after < 0.5 < before
    # without decay, two busy weeks and two idle ones would average 0.475
    assert after < 0.4


def test_gaps_count_once_and_loads_are_clamped() -> None:
    learner = CapacityLearner()
    learner.observe(MONDAY + 10 * HOUR, 0.0, 3.0)
    learner.observe(MONDAY + 10 * HOUR, 0.0, 0.0)  # same instant: no weight, no change
    assert learner.week()[10] == 1.0
    learner.observe(MONDAY + 40 * HOUR, 0.0, 0.0)  # the agent was off for a day: one capped step
    assert learner.weights[slot(1, 16)] == capacity.MAX_STEP


def test_load_of_a_sample() -> None:
    assert capacity.load_of(None) is None
    assert capacity.load_of(Owner(cpu_percent=None)) is None
    assert capacity.load_of(Owner(cpu_percent=25.0)) == 0.5
    assert capacity.load_of(Owner(cpu_percent=90.0)) == 1.0
    assert capacity.load_of(Owner(cpu_percent=1.0, busy_apps=("blender",))) == 1.0
    assert capacity.load_of(Owner(cpu_percent=1.0, in_meeting=True)) == 1.0


def test_file_round_trip_atomic_and_forgiving(tmp_path: Path) -> None:
    learner = CapacityLearner()
    for i in range(50):
        learner.observe(MONDAY + i * STEP, 0.0, i / 50)
    save_file(tmp_path, learner.to_json())
    assert [p.name for p in tmp_path.iterdir()] == ["capacity.json"]  # no temporary file left behind
    again = load_file(tmp_path)
    assert again.week() == learner.week() and again.last == learner.last
    (tmp_path / "capacity.json").write_text("{not json")
    assert load_file(tmp_path).week() == (0.0,) * SLOTS
    (tmp_path / "capacity.json").write_text(json.dumps({"version": 1, "slots": [[2, 0, 0]] * SLOTS}))
    assert load_file(tmp_path).week() == (0.0,) * SLOTS
    assert load_file(tmp_path / "missing").week() == (0.0,) * SLOTS


async def test_reporter_learns_and_saves_on_virtual_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The agent's side: every sample feeds the learner on the injected clock, the week goes out with each
    report, and it is saved to the data dir every `save_every` seconds and survives a restart."""
    start = trio.current_time()

    def clock() -> tuple[float, float]:
        return MONDAY + (trio.current_time() - start), 0.0

    async def sample(host: HostStats) -> GuestState:
        epoch, _ = clock()
        return GuestState(owner=Owner(cpu_percent=100.0 * office_hours(epoch), mem_bytes=1))

    reporter = GuestReporter(sample=sample, data_dir=tmp_path, clock=clock, save_every=3600.0)
    host = HostStats(cpu_count=4, mem_total=1, mem_available=1)
    state = GuestState()
    for _ in range(int(14 * 24 * HOUR / STEP)):
        state = await reporter.report(host)
        await trio.sleep(STEP)
    assert state.capacity is not None and state.capacity_now is not None
    assert state.capacity[slot(2, 11)] == 1.0 and state.capacity[slot(2, 20)] < 0.15
    saved = load_file(tmp_path)
    assert saved.week()[slot(2, 11)] == 1.0  # saved while it ran, not only at the end
    await reporter.save()
    restarted = GuestReporter(sample=sample, data_dir=tmp_path, clock=clock)
    assert (await restarted.report(host)).capacity == reporter.learner.week()  # type: ignore[union-attr]
    off = GuestReporter(sample=sample, data_dir=tmp_path / "off", clock=clock, learning=False)
    assert (await off.report(host)).capacity is None and not (tmp_path / "off").exists()


async def test_agent_heartbeat_carries_the_guest_report(tmp_path: Path) -> None:
    import httpx

    from herd.node.agent import Agent

    async def fixed_host(_: Path) -> HostStats:
        return HostStats(cpu_percent=1.0, cpu_count=2, mem_total=100, mem_available=50, disk_free=10)

    async def sample(host: HostStats) -> GuestState:
        return GuestState(on_battery=True, owner=Owner(cpu_percent=40.0, mem_bytes=7), memory_ceiling=30)

    reporter = GuestReporter(sample=sample, data_dir=tmp_path, clock=lambda: (MONDAY + 10 * HOUR, 0.0))
    async with httpx.AsyncClient(trust_env=False) as client:
        agent = Agent(
            node_id="n1",
            backend_url="http://127.0.0.1:9",
            data_dir=tmp_path,
            client=client,
            sink=None,  # type: ignore[arg-type]
            host_probe=fixed_host,
            guest=reporter,
            probe_timeout=1.0,
        )
        hb = await agent.beat()
    wire = hb.to_json()
    assert wire["on_battery"] is True and wire["memory_ceiling"] == 30 and wire["capacity_now"] == 10.0
    assert wire["owner"]["cpu_percent"] == 40.0 and len(wire["capacity"]) == SLOTS


async def test_router_local_node_reports_and_keeps_its_week(tmp_path: Path) -> None:
    from fake_ollama import FakeOllama
    from harness import start_fleet

    from herd.node.local import LocalNode

    async def fixed_host(_: Path) -> HostStats:
        return HostStats(cpu_percent=1.0, cpu_count=2, mem_total=100, mem_available=50, disk_free=10)

    async def sample(host: HostStats) -> GuestState:
        return GuestState(owner=Owner(cpu_percent=50.0, mem_bytes=1), memory_ceiling=40)

    async with trio.open_nursery() as nursery:
        fake = FakeOllama(["m"], loaded=["m"])
        await nursery.start(fake.run)
        fleet = await start_fleet(nursery, tmp_path, nodes={}, local_ollama_url=fake.url)
        local = LocalNode(
            fleet.router.cfg, fleet.router.registry.ingest, host_probe=fixed_host, guest_sample=sample
        )
        async with trio.open_nursery() as inner:
            await inner.start(local.run)
            with trio.fail_after(10):  # hang guard: the first heartbeat goes out at once
                while fleet.router.cfg.local_node_id not in fleet.router.registry.snapshot.nodes:  # noqa: ASYNC110
                    await trio.sleep(0.01)
            inner.cancel_scope.cancel()
        hb = fleet.router.registry.snapshot.nodes[fleet.router.cfg.local_node_id].heartbeat
        assert (
            hb.guest.memory_ceiling == 40 and hb.guest.capacity is not None and max(hb.guest.capacity) == 1.0
        )
        assert max(load_file(tmp_path).week()) == 1.0  # saved on the way out
        nursery.cancel_scope.cancel()

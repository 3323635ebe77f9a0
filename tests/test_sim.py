"""The fleet simulator: node arithmetic, eviction, determinism, and the scheduling comparison in virtual time."""

from __future__ import annotations

from dataclasses import replace

from herd.sim.node import SimModel, SimNode, SimRequest
from herd.sim.policies import Herd, LeastBusy, RoundRobin
from herd.sim.run import MIXED, simulate


def node(**kw: object) -> SimNode:
    disk = {"a": SimModel("a", 4, 10.0), "b": SimModel("b", 4, 20.0)}
    base: dict[str, object] = dict(
        node_id="n", speed=100.0, ttft=0.5, parallel=2, mem_gb=16, max_loaded=1, disk=disk, loaded=["a"]
    )
    base.update(kw)
    return SimNode(**base)  # type: ignore[arg-type]


def test_hot_request_costs_ttft_plus_tokens_over_speed() -> None:
    n = node()
    req = SimRequest(0, "a", 200, 0.0)
    n.running.append(req)
    assert n.service_time(req, 0.0) == 0.5 + 2.0 and not req.cold and n.cold_loads == 0


def test_cold_load_costs_load_time_and_evicts_lru() -> None:
    n = node()
    req = SimRequest(0, "b", 100, 0.0)
    n.running.append(req)
    assert n.service_time(req, 0.0) == 20.0 + 0.5 + 1.0
    assert req.cold and n.cold_loads == 1 and n.loaded == ["b"]  # max_loaded 1: "a" was evicted
    later = SimRequest(1, "b", 100, 5.0)
    n.running.append(later)
    # the model is still loading: the second request waits for the rest of the load, and the two share speed
    assert n.service_time(later, 5.0) == 15.0 + 0.5 + 100 / (100 / 1.35)


def test_parallel_requests_slow_each_other() -> None:
    n = node()
    reqs = [SimRequest(i, "a", 100, 0.0) for i in range(2)]
    n.running.extend(reqs)
    assert n.service_time(reqs[1], 0.0) == 0.5 + 100 / (100 / 1.35)


def test_heartbeat_reflects_loaded_models_and_memory() -> None:
    hb = node(loaded=["a"]).heartbeat()
    assert [m["name"] for m in hb.loaded] == ["a"] and len(hb.models) == 2
    assert hb.host.mem_available < hb.host.mem_total and hb.parallel == 2


def test_simulation_is_deterministic() -> None:
    short = replace(MIXED, duration=300.0)
    a, b = simulate(short, LeastBusy()), simulate(short, LeastBusy())
    assert a.latencies == b.latencies and a.cold_loads == b.cold_loads


def test_herd_beats_the_baselines_on_the_mixed_fleet() -> None:
    """Virtual time, fixed seed: the router's own decision against round-robin and least-busy."""
    short = replace(MIXED, duration=600.0)
    rr, lb, herd = (simulate(short, p) for p in (RoundRobin(), LeastBusy(), Herd()))
    assert herd.failures == 0
    assert herd.pct(0.99) <= 0.7 * min(rr.pct(0.99), lb.pct(0.99))
    assert herd.cold_loads <= min(rr.cold_loads, lb.cold_loads)
    assert len(herd.latencies) == herd.requests


def test_prompt_evaluation_and_the_slot_cache() -> None:
    n = node(prompt_rate=100.0)
    first = SimRequest(0, "a", 100, 0.0, prompt=300, conv="c")
    n.running.append(first)
    assert n.service_time(first, 0.0) == 0.5 + 3.0 + 1.0 and first.first_token == 3.5
    n.running.remove(first)
    n.finished(first)
    again = SimRequest(1, "a", 100, 10.0, prompt=450, conv="c")  # the last turn (300 + 100) is cached
    n.running.append(again)
    assert n.service_time(again, 10.0) == 0.5 + 0.5 + 1.0 and again.cached == 400


def test_scenario_a_herd_finds_the_fast_node_like_an_oracle() -> None:
    from herd.sim.policies import Oracle
    from herd.sim.scenarios import hetero

    scenario = hetero(1)
    herd, oracle, lb = (simulate(scenario, p) for p in (Herd(), Oracle(), LeastBusy()))
    assert herd.pct(0.5) <= 1.1 * oracle.pct(0.5) and lb.pct(0.5) > 2 * oracle.pct(0.5)


def test_scenario_b_affinity_halves_time_to_first_token() -> None:
    from herd.sim.scenarios import MULTITURN

    herd, off, lb = (simulate(MULTITURN, p) for p in (Herd(), Herd(affinity=False), LeastBusy()))
    assert herd.pct(0.5, herd.ttfts()) <= 0.5 * lb.pct(0.5, lb.ttfts())
    assert off.pct(0.5, off.ttfts()) > 0.5 * lb.pct(0.5, lb.ttfts())  # the gain is affinity's


def test_scenario_c_fair_share_keeps_the_light_app_moving() -> None:
    from herd.sim.scenarios import FLOOD

    fifo, fair = simulate(FLOOD, Herd()), simulate(FLOOD, Herd(), fair=True)
    service = fair.pct(
        0.5, [r.finish - r.start for r in fair.done if r.app == "light" and r.finish and r.start]
    )
    assert fair.pct(0.99, fair.waits("light")) <= 2 * service < fifo.pct(0.99, fifo.waits("light"))
    assert fair.makespan("flood") <= fifo.makespan("flood") / 0.9

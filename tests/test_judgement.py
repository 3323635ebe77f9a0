"""Routing judgement, unit by unit: the performance model and its decay, the time-to-finish estimate, the
scorer using it (faster node wins, unmeasured nodes explored, no node-id ties), conversation affinity (prefix
chains, LRU, expiry, credit), and fair share between apps (order, weights, priority, the holding queue)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from test_scoring import M, node, rank, snap_of

from herd.errors import BadRequest
from herd.routing.affinity import AffinityBook, context_key, prefixes, verdict
from herd.routing.estimate import expected_output, finish_time, request_size
from herd.routing.fairshare import API_KEY_SCOPE, FairOrder, app_of, priority_of
from herd.routing.latency import LatencyBook, LatencyStats
from herd.routing.perf import ALPHA, Perf, Sample, update, weight
from herd.routing.pulse import Pulse
from herd.routing.queue import HoldingQueue
from herd.routing.score import Facts
from herd.routing.slots import Slots


def measured(
    gen_rate: float, *, n: int = 5, prompt_rate: float = 1000.0, overhead: float = 0.05
) -> LatencyStats:
    perf = Perf(at=0.0, prompt_rate=prompt_rate, gen_rate=gen_rate, overhead_s=overhead, n=n)
    return LatencyStats(0.1, gen_rate, 256 / gen_rate, n, perf)


# -- performance model ---------------------------------------------------------------------------------


def test_perf_learns_rates_from_what_nodes_report() -> None:
    p = update(None, Sample(0.0, 0.6, prompt_tokens=500, prompt_s=0.5, completion_tokens=100, gen_s=2.0))
    assert (p.prompt_rate, p.gen_rate, p.n) == (1000.0, 50.0, 1)
    assert p.overhead_s == pytest.approx(0.1) and p.load_s is None
    cold = update(
        p, Sample(1.0, 5.6, prompt_tokens=500, prompt_s=0.5, completion_tokens=10, gen_s=0.2, load_s=5.0)
    )
    assert cold.load_s == 5.0 and cold.overhead_s == pytest.approx(0.1)  # the load is not "overhead"
    # generation observed at concurrency 3 is normalised to one request alone
    shared = update(None, Sample(0.0, 0.1, completion_tokens=100, gen_s=4.0, concurrency=3))
    assert shared.gen_rate == pytest.approx(25 * 1.6)


def test_perf_notices_a_node_that_got_slower_within_minutes() -> None:
    p = None
    for i in range(20):
        p = update(p, Sample(i * 10.0, 0.1, completion_tokens=100, gen_s=1.0))  # 100 tokens/s
    assert p is not None and p.gen_rate == pytest.approx(100)
    t = 200.0
    for _ in range(6):  # throttled to 25 tokens/s; a request every 10 s: within a minute
        t += 10
        p = update(p, Sample(t, 0.1, completion_tokens=100, gen_s=4.0))
    assert p.gen_rate is not None and p.gen_rate < 40
    after_quiet = update(p, Sample(t + 3600, 0.1, completion_tokens=100, gen_s=1.0))
    assert (
        after_quiet.gen_rate is not None and after_quiet.gen_rate > 95
    )  # an hour-old estimate counts for almost nothing
    assert weight(0.0) == ALPHA and weight(120.0) == pytest.approx(0.5)


def test_book_keeps_perf_and_the_models_output_median() -> None:
    book = LatencyBook()
    for tokens in (100, 300, 200):
        book.observe("n", "m", 0.1, 50, 2, completion_tokens=tokens, gen_s=tokens / 50, at=1.0)
    stats = book.stats("n", "m")
    assert stats is not None and stats.perf is not None and stats.perf.gen_rate == pytest.approx(50)
    assert book.model_output("m") == 200 and book.model_output("other") is None


# -- time to finish ------------------------------------------------------------------------------------


def test_request_size_and_expected_output() -> None:
    body = {"messages": [{"role": "system", "content": "x" * 400}, {"role": "user", "content": "y" * 40}]}
    assert request_size(body) == (110, None)
    assert request_size({"prompt": "abcd" * 10, "options": {"num_predict": 64}}) == (10, 64)
    assert request_size(
        {"messages": [{"content": [{"type": "text", "text": "z" * 8}]}], "max_tokens": 9}
    ) == (2, 9)
    assert request_size({"prompt": "x", "options": {"num_predict": -1}}) == (0, None)
    assert expected_output(None, None, 256) == 256 and expected_output(64, None, 256) == 64
    assert expected_output(1000, 120, 256) == 120 and expected_output(50, 120, 256) == 50


def test_finish_time_formula() -> None:
    perf = Perf(prompt_rate=1000.0, gen_rate=50.0, overhead_s=0.2, load_s=8.0, n=5)
    hot = finish_time(
        perf, duration=3, load_cost=0, hot=True, running=0, cap=4, prompt_tokens=2000, output_tokens=100
    )
    assert hot.total == pytest.approx(0.2 + 2.0 + 2.0) and hot.measured
    cold = finish_time(
        perf, duration=3, load_cost=10, hot=False, running=0, cap=4, prompt_tokens=0, output_tokens=100
    )
    assert cold.load == 8.0  # the node's own load time, not the default
    busy = finish_time(
        perf, duration=3, load_cost=0, hot=True, running=5, cap=4, prompt_tokens=0, output_tokens=100
    )
    assert busy.queue == pytest.approx(2 * 3 / 4) and busy.service == pytest.approx(0.2 + 100 * 1.9 / 50)
    cached = finish_time(
        perf,
        duration=3,
        load_cost=0,
        hot=True,
        running=0,
        cap=4,
        prompt_tokens=2000,
        output_tokens=100,
        cached_tokens=1500,
    )
    assert cached.service == pytest.approx(hot.service - 1.5) and cached.saved == pytest.approx(1.5)
    unknown = finish_time(
        None, duration=3, load_cost=0, hot=True, running=0, cap=4, prompt_tokens=9, output_tokens=9
    )
    assert unknown.total == 3 and not unknown.measured


# -- the scorer uses it --------------------------------------------------------------------------------


def test_an_idle_node_known_to_be_5x_faster_wins_whatever_its_name() -> None:
    snap = snap_of(node("a-slow", loaded=True), node("z-fast", loaded=True))
    latency = {("a-slow", M): measured(20.0), ("z-fast", M): measured(100.0)}
    ranked = rank(snap, Facts(M, output_tokens=200), cap=4, latency=latency)
    assert [c.node.node_id for c in ranked] == ["z-fast", "a-slow"]
    assert ranked[0].breakdown["wait"] == 1.0 and ranked[1].breakdown["wait"] < 0.3
    # ...and stays the choice with one request already running on it (4 slots, 1.3x slower each)
    ranked = rank(snap, Facts(M, output_tokens=200), cap=4, latency=latency, in_flight={("z-fast", M): 1})
    assert ranked[0].node.node_id == "z-fast"


def test_equal_scores_go_to_the_node_predicted_to_finish_first() -> None:
    snap = snap_of(node("a", loaded=True), node("b", loaded=True))
    latency = {("a", M): measured(50.0), ("b", M): measured(50.0, overhead=0.01)}
    ranked = rank(snap, Facts(M), cap=4, latency=latency)
    assert ranked[0].node.node_id == "b" and ranked[0].est_wait < ranked[1].est_wait


def test_unmeasured_nodes_are_explored_a_few_times() -> None:
    snap = snap_of(node("a-known", loaded=True), node("b-new", loaded=True))
    latency = {("a-known", M): measured(100.0)}
    assert rank(snap, Facts(M), cap=4, latency=latency)[0].node.node_id == "b-new"
    latency[("b-new", M)] = measured(10.0, n=2)  # measured twice, slow: still explored
    assert rank(snap, Facts(M), cap=4, latency=latency)[0].node.node_id == "b-new"
    latency[("b-new", M)] = measured(10.0, n=3)  # enough: its own numbers decide
    assert rank(snap, Facts(M), cap=4, latency=latency)[0].node.node_id == "a-known"


def test_affinity_credit_wins_when_it_saves_time_and_loses_to_an_idle_node_when_saturated() -> None:
    snap = snap_of(node("a", loaded=True), node("b", loaded=True))
    latency = {("a", M): measured(50.0, prompt_rate=500.0), ("b", M): measured(50.0, prompt_rate=500.0)}
    facts = Facts(M, prompt_tokens=3000, output_tokens=100, cached={"b": 2900})
    ranked = rank(snap, facts, cap=2, latency=latency)
    assert ranked[0].node.node_id == "b" and ranked[0].saved == pytest.approx(2900 / 500)
    # b saturated with long requests queued ahead: the idle node finishes first despite the cache
    latency[("b", M)] = LatencyStats(0.1, 50, 60.0, 5, latency[("b", M)].perf)
    ranked = rank(snap, facts, cap=2, latency=latency, in_flight={("b", M): 4})
    assert ranked[0].node.node_id == "a"


# -- affinity ------------------------------------------------------------------------------------------


def chat(*turns: str) -> dict:
    roles = ["user", "assistant"]
    msgs = [{"role": "system", "content": "You are terse. " * 20}]
    msgs += [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]
    return {"messages": msgs}


def test_the_next_turn_finds_the_node_that_served_the_last_one() -> None:
    book = AffinityBook(capacity=100, ttl=600)
    first = prefixes(M, chat("what is 2+2?"))
    assert book.cached(first, 0.0) == {}
    whole = first.whole
    assert whole is not None
    book.remember(whole[0], whole[1], "n1", 0.0)
    second = prefixes(M, chat("what is 2+2?", "4", "and 3+3?"))
    assert book.cached(second, 10.0) == {"n1": whole[1]} and whole[1] > 70
    assert verdict(book.cached(second, 10.0), "n1") == "hit" and verdict({}, "n1") == "miss"
    other = prefixes(
        M, {"messages": [{"role": "system", "content": "different"}, {"role": "user", "content": "x"}]}
    )
    assert book.cached(other, 10.0) == {}
    assert prefixes("other:model", chat("what is 2+2?", "4", "and 3+3?")).chain[0] != second.chain[0]
    assert book.cached(second, 700.0) == {}  # expired, and forgotten
    assert len(book) == 0


def test_generate_prompt_blocks_and_context_arrays() -> None:
    book = AffinityBook()
    doc = "lorem ipsum " * 200
    first = prefixes(M, {"prompt": doc})
    assert first.whole is not None
    book.remember(*first.whole, "n2", 0.0)
    longer = prefixes(M, {"prompt": doc + " and then some more text to continue"})
    assert book.cached(longer, 1.0) == {"n2": first.whole[1]} and first.whole[1] == 2304 // 4
    ctx = context_key([1, 2, 3, 4])
    assert ctx is not None
    book.remember(ctx[0], ctx[1], "n3", 0.0)
    assert book.cached(prefixes(M, {"prompt": "next", "context": [1, 2, 3, 4]}), 1.0) == {"n3": 4}
    assert prefixes(M, {}).whole is None and context_key("nope") is None


def test_affinity_lru_is_bounded() -> None:
    book = AffinityBook(capacity=3)
    for i in range(5):
        book.remember(f"k{i}", 10, "n", float(i))
    assert len(book) == 3


# -- fair share ----------------------------------------------------------------------------------------


def test_app_is_tag_then_api_key_then_client() -> None:
    scope = {"client": ("10.0.0.7", 5000)}
    assert app_of(("chat-ui", "x"), scope | {API_KEY_SCOPE: "k"}) == "chat-ui"
    assert app_of((), scope | {API_KEY_SCOPE: "k"}) == "k"
    assert app_of((), scope) == "10.0.0.7" and app_of((), {}) == "-"
    assert (priority_of("HIGH"), priority_of(None), priority_of("low")) == (0, 1, 2)
    with pytest.raises(BadRequest):
        priority_of("urgent")


def drain(order: FairOrder[str]) -> list[str]:
    out = []
    while (w := order.head()) is not None:
        order.remove(w, served=True)
        out.append(w)
    return out


def test_round_robin_across_apps_fifo_within_and_priority_first() -> None:
    order: FairOrder[str] = FairOrder()
    for i in range(4):
        order.add(f"flood{i}", "flood")
    order.add("light0", "light")
    order.add("flood-urgent", "flood", priority=0)
    order.add("light1", "light", priority=2)
    assert drain(order) == ["flood-urgent", "light0", "flood0", "light1", "flood1", "flood2", "flood3"]


def test_weights_give_proportional_turns() -> None:
    order: FairOrder[str] = FairOrder({"big": 2.0})
    for i in range(6):
        order.add(f"b{i}", "big")
        order.add(f"s{i}", "small")
    served = drain(order)[:6]
    assert sum(w.startswith("b") for w in served) == 4


async def test_holding_queue_serves_a_light_app_within_one_turn_of_a_flood(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pulse = Pulse()
    slots = Slots(pulse, lambda n, m: 1)
    queue = HoldingQueue(pulse, timeout=1000, max_depth=500)
    served: list[str] = []

    def claim() -> str | None:
        if slots.has_room("n", "m"):
            slots.reserve("n", "m")
            return "n"
        return None

    async def client(name: str, app: str) -> None:
        await queue.admit("m", claim, app=app)
        served.append(name)
        await trio.sleep(1)
        slots.release("n", "m")
        pulse.fire()

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(client, f"flood{i}", "flood")
        await trio.sleep(0.5)
        nursery.start_soon(client, "light", "light")
    # the light request arrived behind 49 waiting flood requests and went after at most one of them
    assert served.index("light") <= 2


def test_a_node_holds_one_prompt_per_slot_and_a_longer_turn_replaces_its_prefix() -> None:
    book = AffinityBook()
    convs = [prefixes(M, chat(f"conversation {i}")) for i in range(3)]
    for p in convs[:2]:
        assert p.whole is not None
        book.remember(*p.whole, "n", 0.0, slots=2, extends=p.chain)
    longer = prefixes(M, chat("conversation 0", "ok", "more"))
    assert longer.whole is not None
    book.remember(*longer.whole, "n", 1.0, slots=2, extends=longer.chain)  # the same slot, now longer
    assert len(book) == 2 and book.cached(convs[1], 2.0) == {"n": convs[1].chain[-1][1]}
    third = convs[2]
    assert third.whole is not None
    book.remember(
        *third.whole, "n", 3.0, slots=2, extends=third.chain
    )  # a third conversation evicts the oldest
    assert book.cached(convs[1], 4.0) == {} and len(book) == 2


def test_llama_cpp_cached_prompt_tokens_are_not_counted_as_evaluated() -> None:
    """The prompt rate must be evaluated tokens over evaluation time: llama.cpp's `usage.prompt_tokens` counts
    the tokens its cache held too, `timings.prompt_n` only those `prompt_ms` timed."""
    from herd.backends.openai_response import counts
    from herd.routing.record import timings

    final = counts(
        {"prompt_tokens": 1000, "completion_tokens": 8}, {"prompt_n": 40, "prompt_ms": 100.0}, 0, 0.2, 0.5, 1
    )
    assert final["prompt_eval_count"] == 40
    assert timings(final)["prompt_tokens"] / timings(final)["prompt_s"] == pytest.approx(400.0)
    assert counts({"prompt_tokens": 12}, {}, 0, 0.1, 0.2, 0.3)["prompt_eval_count"] == 12  # vLLM: usage only


def test_a_cold_unmeasured_node_is_assumed_no_faster_than_the_best_measured() -> None:
    snap = snap_of(node("a-hot", loaded=True), node("b-cold"))
    latency = {("a-hot", M): measured(20.0)}  # 256 tokens at 20 tokens/s: ~12.9 s of service
    ranked = {c.node.node_id: c for c in rank(snap, Facts(M), cap=4, latency=latency)}
    hot = ranked["a-hot"].est_wait
    assert ranked["b-cold"].est_wait == pytest.approx(10.0 + hot)  # cold_load + the best measured service

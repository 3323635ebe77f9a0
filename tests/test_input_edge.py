"""No 500 from input: every cause the fuzzer found, each against a real router with fake nodes, plus the pure
validators in `herd.validate` that fix them (a bad value is a 400 in the caller's dialect naming the field)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from conftest import heartbeat_json
from fuzzing import FuzzFleet, fuzz_fleet
from harness import Fleet, start_fleet

from herd import validate
from herd.errors import BadRequest

SURROGATE = "llama\ud800"


async def fuzz_router(nursery: trio.Nursery, tmp_path: Path) -> tuple[Fleet, FuzzFleet]:
    fleet = await start_fleet(nursery, tmp_path, {})
    fakes = fuzz_fleet()
    await fakes.start(nursery)
    await fakes.beat(fleet.http, fleet.url)
    return fleet, fakes


async def post(fleet: Fleet, path: str, body: Any, **kw: Any) -> httpx.Response:
    return await fleet.http.post(fleet.url + path, content=json.dumps(body), **kw)


def test_model_name_rule() -> None:
    for good in (
        "llama3.2:3b",
        "hf.co/org/Model-GGUF:Q4_K_M",
        "/models/smollm2.gguf",
        "模型:latest",
        "a" * 256,
    ):
        assert validate.model_name(good) == good
    for bad, needle in (
        ("a" * 257, "longer than 256"),
        (SURROGATE, "lone surrogate"),
        ("a\x00b", "U+0000"),
        ("a\r\nX-Evil: 1", "U+000D"),
        ("a\u2028b", "U+2028"),
        ("   ", "blank"),
        ("", "required"),
        (7, "must be a string, got number"),
    ):
        with pytest.raises(BadRequest) as info:
            validate.model_name(bad, "fallback_models[0]")
        assert info.value.param == "fallback_models[0]" and needle in info.value.message


def test_json_values_bounds() -> None:
    validate.json_values({"a": [1, 2.5, -(2**63), 2**64 - 1, {"b": "x"}], "c": None})
    for body, param in (
        ({"options": {"num_predict": 10**400}}, "options.num_predict"),
        ({"host": {"mem_total": -(2**63) - 1}}, "host.mem_total"),
        ({"x": [1, float("inf")]}, "x[1]"),
    ):
        with pytest.raises(BadRequest) as info:
            validate.json_values(body)
        assert info.value.param == param
    deep: Any = 1
    for _ in range(validate.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(BadRequest, match="nested deeper"):
        validate.json_values({"d": deep})


def test_query_int_and_header_value_and_storable() -> None:
    assert validate.query_int({"hours": "24"}, "hours", 1, 1, 168) == 24
    assert validate.query_int({}, "hours", 7, 1, 168) == 7
    for raw in ("²", "\u0661\u0662", "9" * 400, "0", "-1", "1e3", ""):
        with pytest.raises(BadRequest):
            validate.query_int({"hours": raw}, "hours", 1, 1, 168)
    assert validate.header_value("a\r\nX-Evil: 1") == "a%0D%0AX-Evil: 1"
    assert validate.header_value("模型").isascii()
    assert len(validate.header_value("m" * 100_000)) == validate.MAX_HEADER_ECHO
    assert validate.storable("a\ud800b") == "a\ufffdb" and validate.storable("ok") == "ok"


async def test_bad_model_names_are_400_in_each_dialect_and_metrics_survive(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fleet, _ = await fuzz_router(nursery, tmp_path)
    chat = [{"role": "user", "content": "hi"}]
    for name in (SURROGATE, "a\x00b", "m" * 100_000, "x\r\nX-Injected: 1"):
        ollama = await post(fleet, "/api/chat", {"model": name, "messages": chat})
        assert ollama.status_code == 400 and "model" in ollama.json()["error"], ollama.text
        openai = await post(fleet, "/v1/chat/completions", {"model": name, "messages": chat})
        assert openai.status_code == 400 and openai.json()["error"]["param"] == "model"
        anthropic = await post(fleet, "/v1/messages", {"model": name, "max_tokens": 5, "messages": chat})
        assert anthropic.status_code == 400 and anthropic.json()["type"] == "error"
        for path, body in (
            ("/api/show", {"model": name}),
            ("/api/pull", {"model": name}),
            ("/api/copy", {"source": name, "destination": "y"}),
            ("/api/embed", {"model": name, "input": "x"}),
            ("/v1/embeddings", {"model": name, "input": "x"}),
            ("/api/chat", {"model": "llama3.2:3b", "messages": chat, "fallback_models": [name]}),
        ):
            resp = await post(fleet, path, body)
            assert resp.status_code == 400, (path, resp.status_code, resp.text)
        resp = await fleet.http.request(
            "DELETE", fleet.url + "/api/delete", content=json.dumps({"model": name})
        )
        assert resp.status_code == 400
    metrics = await fleet.http.get(fleet.url + "/metrics")
    assert metrics.status_code == 200 and "\\ud800" not in metrics.text


async def test_metrics_and_traces_keep_one_label_for_unknown_names(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fleet, _ = await fuzz_router(nursery, tmp_path)
    for i in range(20):
        resp = await post(fleet, "/api/chat", {"model": f"nope-{i}", "messages": [], "stream": False})
        assert resp.status_code == 404
    with trio.fail_after(10):
        while fleet.router.traces.written < 20:  # noqa: ASYNC110 (the writer is another task)
            await trio.sleep(0.01)
    text = (await fleet.http.get(fleet.url + "/metrics")).text
    assert "nope-" not in text and 'model="(unknown)"' in text
    models = sqlite3.connect(tmp_path / "traces.db").execute("SELECT DISTINCT model FROM traces").fetchall()
    assert models == [("(unknown)",)]


async def test_huge_numbers_are_400(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet, fakes = await fuzz_router(nursery, tmp_path)
    chat = [{"role": "user", "content": "hi"}]
    # num_predict on a thinking model is inflated (x4): a float overflow before
    resp = await post(
        fleet, "/api/chat", {"model": "deepseek-r1:7b", "messages": chat, "options": {"num_predict": 10**400}}
    )
    assert resp.status_code == 400 and "options.num_predict" in resp.json()["error"]
    # the largest integer that passes is still inflated without overflow (and capped)
    resp = await post(
        fleet,
        "/api/chat",
        {"model": "deepseek-r1:7b", "messages": chat, "stream": False, "options": {"num_predict": 2**64 - 1}},
    )
    assert resp.status_code == 200, resp.text
    sent = fakes.ollama.requests[-1][1]["options"]["num_predict"]
    assert sent == 2**64 - 1 or sent <= 2**31 - 1
    for field in ("cpu_percent", "mem_total"):
        hb = heartbeat_json("big", fakes.ollama.url, ["llama3.2:3b"])
        hb["host"][field] = 10**400
        resp = await post(fleet, "/heartbeat", hb)
        assert resp.status_code == 400 and field in resp.json()["error"], resp.text
    resp = await post(fleet, "/api/chat", {"model": "llama3.2:3b", "messages": chat, "options": {"x": 1e999}})
    assert resp.status_code == 400
    for query in ("hours=²", "hours=\u0661", "hours=" + "9" * 400):
        resp = await fleet.http.get(fleet.url + "/fleet/analytics/overview?" + query)
        assert resp.status_code == 400 and resp.json()["error"], resp.text
    resp = await fleet.http.get(fleet.url + "/fleet/traces?status=²&since=1e999")
    assert resp.status_code == 400


async def test_bad_path_segments_are_4xx(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet, _ = await fuzz_router(nursery, tmp_path)
    for path in (
        "/herd/images/a%00b.png",
        "/herd/images/" + "x" * 5000 + ".png",
        "/herd/images/..%2fsecret.png",
        "/dashboard/static/a%00b.js",
        "/dashboard/static/" + "x" * 5000,
        "/v1/models/a%00b",
        "/v1/models/" + "m" * 5000,
    ):
        resp = await fleet.http.get(fleet.url + path)
        assert resp.status_code in (400, 404) and resp.json()["error"], (path, resp.status_code, resp.text)
    for path in ("/fleet/nodes/a%00b/pause", "/fleet/nodes/" + "n" * 5000 + "/resume"):
        resp = await fleet.http.post(fleet.url + path)
        assert resp.status_code in (400, 404) and resp.json()["error"], (path, resp.text)


async def test_media_input_and_broken_backend(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet, _ = await fuzz_router(nursery, tmp_path)
    # a backend that answers undecodable base64 is the backend failing: 502 in the caller's dialect
    resp = await post(
        fleet, "/v1/images/generations", {"model": "broken-image", "prompt": "x", "response_format": "url"}
    )
    assert resp.status_code == 502 and "base64" in resp.json()["error"]["message"]
    # lone surrogates in multipart fields and in JSON fields forwarded as multipart
    for data in ({"language": "\ud800"}, {"prompt": "a\udfffb"}, {"model": "whisper\ud800"}):
        files = {"file": ("a.wav", b"RIFF" + b"\x00" * 64)}
        body = {k: v.encode("utf-8", "surrogatepass") for k, v in {"model": "whisper-1", **data}.items()}
        resp = await fleet.http.post(fleet.url + "/v1/audio/transcriptions", files=files, data=body)
        assert resp.status_code in (200, 400, 404) and resp.content, (data, resp.status_code, resp.text)
        resp = await post(fleet, "/api/transcribe", {"model": "whisper-1", "audio": "UklGRg==", **data})
        assert resp.status_code == 400 and resp.json()["error"], (data, resp.text)
    files = {"file": ("a\r\n.wav", b"RIFF")}
    resp = await fleet.http.post(fleet.url + "/api/transcribe", files=files, data={"temperature": "nan"})
    assert resp.status_code == 400 and "temperature" in resp.json()["error"]


async def test_heartbeat_strings_counts_and_size_are_bounded(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, {}, fleet=_fleet_cfg(heartbeat_max_bytes=64 * 1024))
    url = "http://127.0.0.1:9"
    cases: list[tuple[dict[str, Any], str]] = [
        (heartbeat_json("a\x00b", url, []), "node_id"),
        (heartbeat_json("n", url, ["m\ud800"]), "models[0].name"),
        (heartbeat_json("n", url, [], ["x" * 300]), "loaded[0].name"),
        (heartbeat_json("n", url, [], agent_version="v\r\n1"), "agent_version"),
        (heartbeat_json("n", url, [], backend_version="1" * 1000), "backend_version"),
        (heartbeat_json("n", url, [], backend="gopher"), "backend"),
        (heartbeat_json("n", url, [], parallel=10**9), "parallel"),
        (
            heartbeat_json(
                "n", url, [], media=[{"kind": "image", "model": "i", "url": url, "api": "openai"}] * 65
            ),
            "media",
        ),
    ]
    for body, field in cases:
        resp = await post(fleet, "/heartbeat", body)
        assert resp.status_code == 400 and field in resp.text, (field, resp.text)
    big = heartbeat_json("n", url, [f"model-{i}" for i in range(1000)])  # ~200 KB
    resp = await post(fleet, "/heartbeat", big)
    assert resp.status_code == 413 and resp.json()["error"]
    chunked = await fleet.http.post(fleet.url + "/heartbeat", content=_chunks(json.dumps(big).encode()))
    assert chunked.status_code == 413
    status = (await fleet.http.get(fleet.url + "/fleet/status")).json()
    assert status["nodes"] == []


async def _chunks(data: bytes) -> Any:
    for i in range(0, len(data), 16 * 1024):
        yield data[i : i + 16 * 1024]


def _fleet_cfg(**kw: Any) -> Any:
    from herd.config import FleetConfig

    return FleetConfig(**kw)


async def test_an_early_400_keeps_the_connection_usable(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet, _ = await fuzz_router(nursery, tmp_path)
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(trust_env=False, limits=limits, timeout=10) as client:
        for _ in range(20):
            resp = await client.post(fleet.url + "/api/transcribe", content=b'{"model": 1}' + b" " * 300_000)
            assert resp.status_code == 400 and resp.json()["error"]
            assert (await client.get(fleet.url + "/api/version")).status_code == 200

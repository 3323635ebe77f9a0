"""API keys through a real router with the official clients: `openai`, `anthropic` and `ollama` work with a key
and raise their own 401 error without one; `rpm` and `concurrent` limits answer 429 with Retry-After; the key's
name is the app in traces and analytics; the keys file is re-read on SIGHUP; a key never reaches the log."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest
import trio
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

from herd.config import SecurityConfig
from herd.guard.keys import ApiKey, Secret
from herd.logsetup import setup as setup_logging

MODEL = "llama3.2:3b"
MESSAGES = [{"role": "user", "content": "hi"}]
KEY = "sk-herd-3f9a1c77e0b2"


def _keys(*keys: ApiKey) -> SecurityConfig:
    return SecurityConfig(api_keys=keys)


async def test_official_clients_with_and_without_a_key(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, security=_keys(ApiKey("webui", Secret(KEY))))

    def run_openai(key: str) -> str:
        with openai.OpenAI(base_url=fleet.url + "/v1", api_key=key, max_retries=0) as c:
            return c.chat.completions.create(model=MODEL, messages=MESSAGES).choices[0].message.content or ""  # type: ignore[arg-type]

    def run_anthropic(key: str) -> str:
        with anthropic.Anthropic(base_url=fleet.url, api_key=key, max_retries=0) as c:
            msg = c.messages.create(model=MODEL, max_tokens=32, messages=MESSAGES)  # type: ignore[arg-type]
            return msg.content[0].text  # type: ignore[union-attr]

    def run_ollama(key: str | None) -> str:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        c = ollama.Client(host=fleet.url, trust_env=False, headers=headers)
        try:
            return c.chat(model=MODEL, messages=MESSAGES).message.content or ""
        finally:
            c.close()

    reply = fleet.nodes["n1"].reply
    assert await trio.to_thread.run_sync(run_openai, KEY) == reply
    assert await trio.to_thread.run_sync(run_anthropic, KEY) == reply
    assert await trio.to_thread.run_sync(run_ollama, KEY) == reply

    with pytest.raises(openai.AuthenticationError) as oa:
        await trio.to_thread.run_sync(run_openai, "sk-wrong")
    assert oa.value.status_code == 401 and oa.value.code == "invalid_api_key"
    assert oa.value.type == "invalid_request_error"  # type: ignore[attr-defined]
    with pytest.raises(anthropic.AuthenticationError) as an:
        await trio.to_thread.run_sync(run_anthropic, "sk-wrong")
    assert an.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(ollama.ResponseError) as ol:
        await trio.to_thread.run_sync(run_ollama, None)
    assert ol.value.status_code == 401 and "API key" in ol.value.error

    # the key's name is the app in traces and analytics
    with trio.fail_after(10):  # hang guard: the writer batches quickly
        while fleet.router.traces.written < 3:  # noqa: ASYNC110 (the writer is another task)
            await trio.sleep(0.02)
    traces = (await fleet.http.get(fleet.url + "/fleet/traces?tag=webui")).json()["traces"]
    assert len(traces) == 3 and all(t["tags"][0] == "webui" for t in traces)
    apps = (await fleet.http.get(fleet.url + "/fleet/analytics/apps")).json()["apps"]
    assert [a["tag"] for a in apps] == ["webui"]


async def test_rpm_limit_answers_429_with_retry_after(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, security=_keys(ApiKey("batch", Secret(KEY), rpm=2)))
    auth = {"Authorization": f"Bearer {KEY}"}
    body = {"model": MODEL, "messages": MESSAGES, "stream": False}
    for _ in range(2):
        assert (await fleet.http.post(fleet.url + "/api/chat", json=body, headers=auth)).status_code == 200
    limited = await fleet.http.post(fleet.url + "/v1/chat/completions", json=body, headers=auth)
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
    assert (
        limited.json()["error"]["code"] == "rate_limit_exceeded"
        and "batch" in limited.json()["error"]["message"]
    )
    assert len(fleet.nodes["n1"].requests) == 2  # the third never reached a node


async def test_concurrent_limit(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"n1": FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=0.05, num_chunks=1000)}
    security = _keys(ApiKey("one-at-a-time", Secret(KEY), concurrent=1))
    fleet = await start_fleet(nursery, tmp_path, nodes, security=security)
    auth = {"x-api-key": KEY}
    body = {"model": MODEL, "messages": MESSAGES}
    async with fleet.http.stream("POST", fleet.url + "/api/chat", json=body, headers=auth) as first:
        async for _ in first.aiter_lines():
            break  # streaming: the key's one slot is held
        second = await fleet.http.post(fleet.url + "/api/chat", json=body, headers=auth)
        assert second.status_code == 429 and second.headers["retry-after"] == "1"
    nodes["n1"].num_chunks = 2
    with trio.fail_after(10):  # hang guard: the first request's slot frees when its stream ends
        while await _status(fleet.http, fleet.url, KEY) == 429:  # noqa: ASYNC110 (polls the router)
            await trio.sleep(0.02)


async def _status(http: httpx.AsyncClient, url: str, key: str) -> int:
    resp = await http.post(
        url + "/api/chat",
        json={"model": MODEL, "messages": MESSAGES, "stream": False},
        headers={"Authorization": f"Bearer {key}"},
    )
    return resp.status_code


async def test_keys_file_is_reloaded(nursery: trio.Nursery, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# app key\nalpha sk-alpha-1111\n")
    fleet = await start_fleet(nursery, tmp_path, security=SecurityConfig(api_keys_file=keys_file))
    assert await _status(fleet.http, fleet.url, "sk-alpha-1111") == 200
    assert await _status(fleet.http, fleet.url, "sk-beta-2222") == 401
    keys_file.write_text("beta sk-beta-2222 rpm=10\n")
    reloader = fleet.router.key_reloader
    assert reloader is not None
    await reloader.reload_now()
    assert await _status(fleet.http, fleet.url, "sk-beta-2222") == 200
    assert await _status(fleet.http, fleet.url, "sk-alpha-1111") == 401
    keys_file.write_text("broken-line-without-key\n")  # a broken file keeps the keys in force
    await reloader.reload_now()
    assert await _status(fleet.http, fleet.url, "sk-beta-2222") == 200


async def test_sighup_reloads_the_keys_file(nursery: trio.Nursery, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("alpha sk-alpha-1111\n")
    fleet = await start_fleet(nursery, tmp_path, security=SecurityConfig(api_keys_file=keys_file))
    reloader = fleet.router.key_reloader
    assert reloader is not None  # started: its SIGHUP receiver is open, so the signal cannot kill pytest
    keys_file.write_text("gamma sk-gamma-3333\n")
    os.kill(os.getpid(), signal.SIGHUP)
    with trio.fail_after(10):  # hang guard: the signal arrives at once
        while reloader.reloads == 0:  # noqa: ASYNC110 (the reloader is another task)
            await trio.sleep(0.01)
    assert await _status(fleet.http, fleet.url, "sk-gamma-3333") == 200
    assert await _status(fleet.http, fleet.url, "sk-alpha-1111") == 401


async def test_keys_never_reach_the_log(nursery: trio.Nursery, tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    listener = setup_logging("warning", tmp_path / "logs", file_level="debug")
    admin = "adm-5e1d2c3b4a"
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"alpha {KEY} rpm=1\n")
    try:
        fleet = await start_fleet(
            nursery,
            tmp_path,
            access_log=True,
            security=SecurityConfig(api_keys_file=keys_file, admin_key=Secret(admin)),
        )
        for key in (KEY, KEY, "sk-wrong-777", admin):  # served, 429, 401, the admin key
            await _status(fleet.http, fleet.url, key)
        await fleet.http.get(fleet.url + "/fleet/status", headers={"X-Herd-Admin-Key": admin})
        keys_file.write_text(f"alpha {KEY} rpm=banana\n")  # a broken reload logs an error naming the line
        assert fleet.router.key_reloader is not None
        await fleet.router.key_reloader.reload_now()
        with trio.fail_after(10):  # hang guard
            while fleet.router.traces.written < 2:  # noqa: ASYNC110 (the writer is another task)
                await trio.sleep(0.02)
    finally:
        listener.stop()
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    log = (tmp_path / "logs" / "herd.log").read_text()
    assert "API keys file" in log and "line 1" in log and '"POST /api/chat' in log  # errors and access lines
    traces = (tmp_path / "traces.db").read_bytes()
    for secret in (KEY, admin, "sk-wrong-777"):
        assert secret not in log and secret.encode() not in traces

"""The trace store: one row per request through one batching writer; retention; migrations; datasette reads it."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import httpx
import trio
from harness import start_fleet

from herd.routing.record import RequestRecord
from herd.store.traces import MIGRATIONS, TraceStore, open_db

MODEL = "llama3.2:3b"


async def wait_written(store: TraceStore, n: int) -> None:
    with trio.fail_after(10):  # hang guard only
        while store.written < n:  # noqa: ASYNC110 (the writer is another task)
            await trio.sleep(0.01)


async def test_every_request_becomes_a_row(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    await fleet.http.post(
        fleet.url + "/api/chat",
        json={"model": MODEL, "messages": [], "stream": False},
        headers={"X-Herd-Tags": "nightly"},
    )
    await fleet.http.post(
        fleet.url + "/v1/chat/completions",
        json={"model": "ghost", "messages": [{"role": "user", "content": "x"}]},
    )
    await wait_written(fleet.router.traces, 2)
    rows = (
        sqlite3.connect(tmp_path / "traces.db")
        .execute(
            "SELECT dialect, model, node, status, tags, score IS NOT NULL, completion_tokens > 0 FROM traces ORDER BY id"
        )
        .fetchall()
    )
    assert rows[0] == ("ollama", MODEL, "n1", 200, '["nightly"]', 1, 1)
    assert rows[1][:4] == ("openai", "(unknown)", None, 404)  # a name the fleet does not know: one key


async def test_retention_and_migrations(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    old = RequestRecord(time.time() - 40 * 86400, 0.0, "ollama", "/api/chat", "m", "m:latest", False)
    new = RequestRecord(time.time(), 0.0, "ollama", "/api/chat", "m", "m:latest", False)
    store = TraceStore(path, retention_days=30, flush_interval=0.01)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        store.offer(old)
        store.offer(new)
        await wait_written(store, 2)
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:  # a restart prunes and re-applies no migration
        await nursery.start(TraceStore(path, retention_days=30).run)
        nursery.cancel_scope.cancel()
    db = open_db(path)
    assert db.execute("SELECT COUNT(*) FROM traces").fetchone() == (1,)
    assert [r["version"] for r in db["_migrations"].rows] == list(range(1, len(MIGRATIONS) + 1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_datasette_opens_the_trace_db(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    await fleet.http.post(fleet.url + "/api/chat", json={"model": MODEL, "messages": [], "stream": False})
    await wait_written(fleet.router.traces, 1)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "datasette",
        "serve",
        str(tmp_path / "traces.db"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    run = partial(trio.run_process, cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    proc = await nursery.start(run)
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            rows = None
            with trio.fail_after(60):  # hang guard: datasette takes a moment to start
                while rows is None:
                    try:
                        resp = await client.get(f"http://127.0.0.1:{port}/traces/traces.json?_shape=array")
                        rows = resp.json()
                    except httpx.TransportError:
                        await trio.sleep(0.2)
        assert rows[0]["model"] == MODEL and rows[0]["node"] == "n1" and rows[0]["status"] == 200
        assert json.loads(rows[0]["breakdown"])["thermal"] == 1.0
    finally:
        proc.terminate()

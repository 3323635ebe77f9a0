"""A router killed with SIGKILL loses at most the batch in flight and never corrupts the trace database."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import trio
from conftest import heartbeat_json
from fake_ollama import FakeModel, FakeOllama

MODEL = "llama3.2:3b"


def rows(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_sigkill_keeps_the_trace_db_intact(nursery: trio.Nursery, tmp_path: Path) -> None:
    fake = FakeOllama([FakeModel(MODEL)], loaded=[MODEL])
    await nursery.start(fake.run)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "herd",
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-local-node",
        "--no-mdns",
        "--data-dir",
        str(tmp_path),
    ]
    proc = await nursery.start(
        partial(trio.run_process, cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    )
    url = f"http://127.0.0.1:{port}"
    db = tmp_path / "traces.db"
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        with trio.fail_after(30):  # hang guard: the router starts in about a second
            while True:
                try:
                    await client.post(
                        url + "/heartbeat",
                        content=json.dumps(heartbeat_json("n1", fake.url, [MODEL], [MODEL])),
                    )
                    break
                except httpx.TransportError:
                    await trio.sleep(0.1)
        body = {"model": MODEL, "messages": [], "stream": False}
        for _ in range(20):
            assert (await client.post(url + "/api/chat", json=body)).status_code == 200
        with trio.fail_after(10):
            while rows(db) < 20:  # noqa: ASYNC110 (another process writes it)
                await trio.sleep(0.1)

        async def burst() -> None:
            for _ in range(200):
                try:
                    await client.post(url + "/api/chat", json=body)
                except httpx.TransportError:
                    return

        async with trio.open_nursery() as load:
            load.start_soon(burst)
            await trio.sleep(0.3)
            proc.send_signal(signal.SIGKILL)  # mid-traffic, mid-batch
    await proc.wait()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert (
        conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0] >= 20
    )  # everything flushed before survives

"""State a caller or an unlucky operator cannot grow without bound, and failures that still answer: forgotten
nodes, a trace batch no row can poison, echoed headers, and the last-resort 500 with a body."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import trio
import trio.testing
from conftest import heartbeat_json
from harness import start_fleet

from herd.config import FleetConfig
from herd.fleet.heartbeat import parse_heartbeat
from herd.fleet.registry import Expiry, Registry
from herd.fleet.state import FleetSnapshot, NodeStatus, apply_heartbeat, forgotten, sweep
from herd.routing.record import RequestRecord
from herd.store.traces import TraceStore
from herd.web.server import RequestScoped, safe_header


def hb(node_id: str) -> Any:
    return parse_heartbeat(heartbeat_json(node_id, f"http://{node_id}:11434", ["m"]))


def test_sweep_forgets_nodes_silent_past_forget_after() -> None:
    cfg = FleetConfig(degraded_after=15, offline_after=30, forget_after=3600)
    snap = apply_heartbeat(apply_heartbeat(FleetSnapshot(), hb("a"), now=0.0), hb("b"), now=1000.0)
    offline = sweep(snap, 3599.0, cfg)
    assert offline.nodes["a"].status is NodeStatus.OFFLINE and "a" in offline.nodes
    gone = sweep(offline, 3600.0, cfg)
    assert set(gone.nodes) == {"b"} and forgotten(offline, gone) == ["a"]
    assert gone.nodes["b"].status is NodeStatus.OFFLINE
    assert sweep(gone, 3601.0, cfg) is gone


async def test_registry_forgets_and_unpauses_on_autojump_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry(FleetConfig(sweep_interval=1, forget_after=600))
    registry.ingest(hb("a"))
    registry.pause("a", True)
    async with trio.open_nursery() as nursery:
        await nursery.start(Expiry(registry).run)
        await trio.sleep(599)
        assert registry.snapshot.nodes["a"].status is NodeStatus.OFFLINE
        await trio.sleep(2)
        assert "a" not in registry.snapshot.nodes and "a" not in registry.paused
        registry.ingest(hb("a"))  # a forgotten node that comes back simply joins again
        assert registry.snapshot.nodes["a"].status is NodeStatus.ONLINE
        nursery.cancel_scope.cancel()


def record(model: str) -> RequestRecord:
    return RequestRecord(
        started_at=1e9,
        started=0.0,
        dialect="ollama",
        path="/api/chat",
        requested_model=model,
        model=model,
        stream=False,
    )


async def test_a_bad_row_does_not_poison_its_batch(nursery: trio.Nursery, tmp_path: Path) -> None:
    rejected: list[int] = []
    store = TraceStore(tmp_path / "traces.db", flush_interval=0.05, on_reject=lambda: rejected.append(1))
    await nursery.start(store.run)
    store.offer(record("before"))
    store.offer(record("bad\ud800name"))  # row_of makes it storable
    store.offer_row({"ts": 1e9, "model": "raw\udfff", "status": 200})  # a raw row SQLite cannot take
    store.offer_row({"ts": 1e9, "model": "after", "status": 200})
    with trio.fail_after(10):  # hang guard only
        while store.written + store.rejected < 4:  # noqa: ASYNC110 (the writer is another task)
            await trio.sleep(0.01)
    rows = sqlite3.connect(tmp_path / "traces.db").execute("SELECT model FROM traces ORDER BY id").fetchall()
    assert rows == [("before",), ("bad\ufffdname",), ("after",)]
    assert store.rejected == 1 and rejected == [1]


async def test_echoed_headers_are_bounded_and_unsplittable(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    long = "é" * 200 + ":latest"  # a valid name, 1,200+ bytes once percent-encoded
    resp = await fleet.http.post(
        fleet.url + "/api/pull", content=json.dumps({"model": long, "stream": False})
    )
    assert resp.status_code == 200, resp.text
    assert len(resp.headers["X-Herd-Model"]) <= 256 and resp.headers["X-Herd-Model"].endswith("...")
    resp = await fleet.http.post(
        fleet.url + "/api/pull", content=json.dumps({"model": "模型", "stream": False})
    )
    assert resp.status_code == 200 and resp.headers["X-Herd-Model"] == "%E6%A8%A1%E5%9E%8B:latest"


async def test_unexpected_errors_answer_in_dialect_and_are_counted(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fleet = await start_fleet(nursery, tmp_path)

    def explode() -> dict[str, Any]:
        raise ZeroDivisionError("a bug")

    fleet.router.services.settings.as_json = explode  # type: ignore[method-assign]
    resp = await fleet.http.get(fleet.url + "/fleet/settings")
    assert resp.status_code == 500 and resp.json() == {"error": "internal error: ZeroDivisionError"}
    metrics = (await fleet.http.get(fleet.url + "/metrics")).text
    assert "herd_unexpected_errors_total 1" in metrics


async def test_asgi_wrapper_answers_an_escaped_exception_with_a_body() -> None:
    counted: list[int] = []
    sent: list[dict[str, Any]] = []

    async def broken_app(scope: Any, receive: Any, send: Any) -> None:
        raise UnicodeEncodeError(
            "utf-8", "\ud800", 0, 1, "surrogates not allowed"
        )  # as Quart sending headers

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    wrapper = RequestScoped(broken_app, on_unexpected=lambda: counted.append(1))
    await wrapper({"type": "http", "path": "/v1/chat/completions", "method": "POST"}, receive, send)
    assert sent[0]["status"] == 500 and counted == [1]
    error = json.loads(sent[1]["body"])["error"]
    assert error["type"] == "server_error" and error["message"] == "internal error: UnicodeEncodeError"

    async def cut_app(scope: Any, receive: Any, send: Any) -> None:  # fails mid-body: counted, not re-started
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("a bug mid-stream")

    sent.clear()
    await RequestScoped(cut_app, on_unexpected=lambda: counted.append(1))(
        {"type": "http", "path": "/api/chat", "method": "POST"}, receive, send
    )
    assert [m["type"] for m in sent] == ["http.response.start"] and counted == [1, 1]

    async def splitting_app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"x-herd-model", b"a\r\nSet-Cookie: x"), (b"x-long", b"y" * 20_000)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    sent.clear()
    await RequestScoped(splitting_app)({"type": "http", "path": "/", "method": "GET"}, receive, send)
    assert dict(sent[0]["headers"]) == {b"x-herd-model": b"a  Set-Cookie: x", b"x-long": b"y" * 8192}
    assert safe_header(b"a\x00b") == b"ab"

"""The inference routes' fast path (`herd.web.fastpath`, below Quart): the guarantees of the Quart path hold on
it (slot release on a client leaving a non-stream request, prompt shutdown after keep-alive requests, the body
timeout), and other methods on its paths still get Quart's answers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import trio
import trio.testing
from conftest import heartbeat_json
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

from herd.config import RouterConfig
from herd.nursery.router import Router
from herd.web.fastpath import FastPath

MODEL = "llama3.2:3b"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}


async def _exchange(sock: trio.socket.SocketType, head: bytes, body: bytes = b"") -> bytes:
    """One request on a raw keep-alive socket; the whole response (Content-Length framed)."""
    await sock.send(head + body)
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += await sock.recv(65536)
    top, _, rest = reply.partition(b"\r\n\r\n")
    length = next(
        int(x.split(b":")[1]) for x in top.split(b"\r\n") if x.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        rest += await sock.recv(65536)
    return top + b"\r\n\r\n" + rest


async def test_other_methods_on_inference_paths_get_quarts_answers(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    assert isinstance(fleet.router.guard.app, FastPath)  # the guard sits in front of the fast path
    resp = await fleet.http.get(fleet.url + "/v1/chat/completions")
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"
    resp = await fleet.http.get(fleet.url + "/api/chat")
    assert resp.status_code == 405 and resp.json() == {"error": "method GET is not allowed on /api/chat"}
    resp = await fleet.http.post(fleet.url + "/api/chat", json=CHAT)  # POST is served (never the placeholder)
    assert resp.status_code == 200 and resp.json()["done"] is True


async def test_client_leaving_a_non_stream_request_frees_slot_and_node(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    nodes = {"n1": FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=0.05, num_chunks=1000)}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    fake = nodes["n1"]
    with trio.move_on_after(0.5):  # the reply would take 50 s: leave while the node generates
        await fleet.http.post(fleet.url + "/api/chat", json=CHAT)
    with trio.fail_after(10):  # hang guard only
        while fake.cancelled_streams == 0 or fleet.router.slots.total():  # noqa: ASYNC110 (polls another server)
            await trio.sleep(0.01)
    assert fake.active_streams == 0 and fake.completed_streams == 0
    assert fleet.router.services.recorder.recent[-1].status == 499


async def test_without_the_connection_signal_a_watcher_task_hears_the_client_leave(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """HTTP/2 (a client may cancel one stream of a connection) has no connection-level signal: a watcher task
    reads the ASGI disconnect and cancels the request, which frees the slot and the node as on HTTP/1.1."""
    nodes = {"n1": FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=0.05, num_chunks=1000)}
    fleet = await start_fleet(nursery, tmp_path, nodes)
    fake, app = nodes["n1"], fleet.router.web.app
    port = int(fleet.url.rsplit(":", 1)[1])
    body = json.dumps(CHAT).encode()
    to_app, from_client = trio.open_memory_channel[dict[str, object]](4)
    await to_app.send({"type": "http.request", "body": body, "more_body": False})
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "2",
        "method": "POST",
        "path": "/api/chat",
        "raw_path": b"/api/chat",
        "query_string": b"",
        "headers": [(b"host", b"localhost"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", port),
        "scheme": "http",
        "root_path": "",
    }
    async with trio.open_nursery() as inner:
        inner.start_soon(app, scope, from_client.receive, send)
        with trio.fail_after(10):  # hang guard only
            while not fleet.router.slots.total():  # noqa: ASYNC110 (the request is another task)
                await trio.sleep(0.01)
        await to_app.send({"type": "http.disconnect"})  # the client cancels its stream
    with trio.fail_after(10):  # hang guard only
        while fake.cancelled_streams == 0:  # noqa: ASYNC110 (polls another server)
            await trio.sleep(0.01)
    assert fleet.router.slots.total() == 0 and not sent  # nothing was answered: the request was cancelled
    assert fleet.router.services.recorder.recent[-1].status == 499


async def test_body_that_never_arrives_is_a_408_in_the_callers_dialect(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fleet = await start_fleet(nursery, tmp_path, body_timeout=30.0)
    host, port = fleet.url.removeprefix("http://").split(":")
    with trio.socket.socket() as sock:
        await sock.connect((host, int(port)))
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n"
        await sock.send(head + b'{"model": ')
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.endswith(b"}"):
            reply += await sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 408")
    error = json.loads(reply.partition(b"\r\n\r\n")[2])["error"]
    assert error["code"] == "request_timeout" and error["type"] == "invalid_request_error"


async def test_shutdown_is_prompt_after_fast_path_requests(nursery: trio.Nursery, tmp_path: Path) -> None:
    """The shielded final send (herd.web.server) must cover the fast path too: an idle keep-alive connection
    that carried inference requests must not hold graceful shutdown for the whole graceful_timeout."""
    fake = FakeOllama([FakeModel(MODEL)], loaded=[MODEL])
    await nursery.start(fake.run)
    cfg = RouterConfig(
        data_dir=tmp_path, host="127.0.0.1", port=0, local_node=False, mdns=False, graceful_timeout=3600.0
    )
    with trio.fail_after(30):  # hang guard only: the bug waits 3600 s
        async with trio.open_nursery() as inner:
            router = Router(cfg)
            urls = await inner.start(router.run)
            async with httpx.AsyncClient(trust_env=False) as http:
                beat = heartbeat_json("n1", fake.url, [MODEL], [MODEL])
                assert (await http.post(urls[0] + "/heartbeat", content=json.dumps(beat))).status_code == 200
            host, port = urls[0].removeprefix("http://").split(":")
            with trio.socket.socket() as sock:
                await sock.connect((host, int(port)))
                body = json.dumps(CHAT).encode()
                head = b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(body)
                for _ in range(2):  # two inference requests on one keep-alive connection, then idle
                    reply = await _exchange(sock, head, body)
                    assert reply.startswith(b"HTTP/1.1 200") and b'"done":true' in reply
                router.stop()
                assert await sock.recv(65536) == b""  # the server closed the idle connection
        # leaving the inner nursery means router.run returned: shutdown finished

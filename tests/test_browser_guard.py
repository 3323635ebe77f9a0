"""The guard in a real headless Chromium: a page on an allowed origin (http://localhost:PORT, served by a second
server) streams from `/api/chat` and `/v1/chat/completions` with an `Authorization` header; a page on a
disallowed origin (http://127.0.0.2:PORT) fails to pause a node and to run inference, even with the `no-cors`
and `text/plain` tricks; the dashboard of a router with an admin key asks for it, keeps it in sessionStorage and
works, its WebSocket included.

Needs Debian's `chromium` (see tests/browser.py); skipped with the reason otherwise, except under CI=true."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio
from browser import Page, chromium_page, skip_without_chromium
from conftest import heartbeat_json
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

from herd.config import SecurityConfig
from herd.guard.keys import ApiKey, Secret

pytestmark = skip_without_chromium

MODEL = "llama3.2:3b"
KEY = "sk-browser-9d8c7b6a"
ADMIN = "adm-browser-1a2b3c"

# The page's script: calls the router the way a browser app would and reports what it saw.
PAGE = b"""<!doctype html><html><body><script>
const body = (extra) => JSON.stringify({model: "llama3.2:3b", messages: [{role: "user", content: "hi"}], ...extra});
async function read(resp) {
  const reader = resp.body.getReader(); const dec = new TextDecoder(); let reads = 0, text = "";
  for (;;) { const {done, value} = await reader.read(); if (done) break; reads++; text += dec.decode(value); }
  return {status: resp.status, node: resp.headers.get("X-Herd-Node"), reads, text};
}
window.streamBoth = async (router, key) => {
  const headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"};
  const ollama = await read(await fetch(router + "/api/chat", {method: "POST", headers, body: body({})}));
  const openai = await read(await fetch(router + "/v1/chat/completions", {method: "POST", headers, body: body({stream: true})}));
  return {ollama, openai};
};
window.attack = async (router, beat) => {
  const out = {};
  for (const [name, path, init] of [
    ["beat_no_cors", "/heartbeat", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: beat}],
    ["pause_no_cors", "/fleet/nodes/n1/pause", {method: "POST", mode: "no-cors"}],
    ["chat_text_plain", "/api/chat", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: body({stream: false})}],
    ["chat_cors", "/v1/chat/completions", {method: "POST", headers: {"Content-Type": "application/json"}, body: body({})}],
  ]) {
    try { const r = await fetch(router + path, init); out[name] = r.type + " " + r.status; }
    catch (e) { out[name] = "blocked"; }
  }
  return out;
};
</script></body></html>"""


async def _serve_page(host: str, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """A second web server: the page above at every path."""

    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(PAGE)}\r\nConnection: close\r\n\r\n"
            await stream.send_all(head.encode() + PAGE)

    listeners = await trio.open_tcp_listeners(0, host=host)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handler, listeners)


async def _open(page: Page, url: str) -> None:
    await page.call("Page.navigate", url=url)
    await page.until("document.readyState", "complete")


async def _run(page: Page, expression: str) -> Any:
    with trio.fail_after(30):  # hang guard
        result = await page.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
    return result["result"].get("value")


async def test_allowed_page_streams_with_a_key(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {"n1": FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=0.05, num_chunks=6)}
    fleet = await start_fleet(
        nursery, tmp_path, nodes, security=SecurityConfig(api_keys=(ApiKey("page", Secret(KEY)),))
    )
    port = await nursery.start(_serve_page, "127.0.0.1")
    async with chromium_page(nursery, tmp_path) as page:
        await _open(page, f"http://localhost:{port}/app.html")
        seen = await _run(page, f"window.streamBoth({json.dumps(fleet.url)}, {json.dumps(KEY)})")
        wrong = await _run(page, f"window.streamBoth({json.dumps(fleet.url)}, 'sk-wrong')")
    ollama, openai = seen["ollama"], seen["openai"]
    assert ollama["status"] == 200 and ollama["node"] == "n1"  # X-Herd-Node is exposed to the page
    lines = [json.loads(x) for x in ollama["text"].splitlines()]
    assert len(lines) == 7 and lines[-1]["done"] is True and ollama["reads"] > 1  # streamed, not one blob
    assert (
        openai["status"] == 200 and openai["reads"] > 1 and openai["text"].rstrip().endswith("data: [DONE]")
    )
    assert (
        wrong["ollama"]["status"] == 401 and "API key" in wrong["ollama"]["text"]
    )  # readable: CORS on errors
    assert len(nodes["n1"].requests) == 2


async def test_disallowed_page_cannot_pause_or_infer(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)  # zero config: no keys at all
    port = await nursery.start(_serve_page, "127.0.0.2")
    async with chromium_page(nursery, tmp_path) as page:
        await _open(page, f"http://127.0.0.2:{port}/evil.html")
        assert await page.eval("location.origin") == f"http://127.0.0.2:{port}"
        beat = json.dumps(heartbeat_json("intruder", "http://203.0.113.9:11434", [MODEL]))
        seen = await _run(page, f"window.attack({json.dumps(fleet.url)}, {json.dumps(beat)})")
    assert seen == {
        "beat_no_cors": "opaque 0",
        "pause_no_cors": "opaque 0",
        "chat_text_plain": "opaque 0",
        "chat_cors": "blocked",
    }
    status = (await fleet.http.get(fleet.url + "/fleet/status")).json()
    assert [(n["node_id"], n["paused"]) for n in status["nodes"]] == [
        ("n1", False)
    ]  # no intruder, not paused
    assert fleet.nodes["n1"].requests == []  # no inference ran


async def test_dashboard_asks_for_the_admin_key_once(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, security=SecurityConfig(admin_key=Secret(ADMIN)))
    async with chromium_page(nursery, tmp_path) as page:
        await _open(page, fleet.url + "/dashboard")
        await page.until("document.getElementById('login').hidden", False)
        assert await page.eval("document.querySelectorAll('[data-node-id]').length") == 0
        await page.eval("document.getElementById('admin-key').value = 'wrong'")
        await page.eval("document.querySelector('#login button').click()")
        await page.until("document.getElementById('login-note').textContent", "That key was refused.")
        await page.eval(f"document.getElementById('admin-key').value = {json.dumps(ADMIN)}")
        await page.eval("document.querySelector('#login button').click()")
        await page.until("document.getElementById('conn').textContent", "live")  # the WebSocket is in
        await page.until("document.querySelectorAll('[data-node-id]').length", 1)
        assert await page.eval("sessionStorage.getItem('herd-admin-key')") == ADMIN
        await fleet.beat("n1", draining=True)  # live updates over the authenticated socket
        await page.until("document.querySelector('[data-node-id=\"n1\"]').dataset.state", "draining")
        await page.eval("document.querySelector('[data-tab=\"settings\"]').click()")
        await page.until("document.getElementById('config').textContent.includes('redacted')", True)
        await page.eval("document.getElementById('auto_pull').click()")  # a fleet change with the key
        with trio.fail_after(10):  # hang guard
            while not svc_auto_pull(fleet):  # noqa: ASYNC110 (the page acts in another process)
                await trio.sleep(0.05)
        await _open(page, fleet.url + "/dashboard")  # a reload: asked once, not again
        await page.until("document.querySelectorAll('[data-node-id]').length", 1)
        assert await page.eval("document.getElementById('login').hidden") is True


def svc_auto_pull(fleet: Any) -> bool:
    return bool(fleet.router.services.settings.as_json()["auto_pull"])

"""Headless Chromium for the browser tests (tests/test_browser*.py), driven over the DevTools protocol
(trio-websocket): `async with chromium_page(nursery, tmp_path) as page:` starts Chromium, waits for its
DevTools port, opens the page target's WebSocket and yields a `Page` with the Page domain enabled; Chromium is
terminated on the way out.

Needs Debian's `chromium` (installed by .ci/run); a test module sets `pytestmark = skip_without_chromium` to
be skipped with the reason otherwise. Under CI=true a missing Chromium is an error, not a skip."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI") == "true":
    raise RuntimeError("the browser test must run under CI, but chromium is not installed")
skip_without_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"
)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


class Page:
    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        await self.ws.send_message(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await self.ws.get_message())
            if reply.get("id") == msg_id:
                assert "error" not in reply, reply
                return reply.get("result", {})
            self.note(reply)

    def note(self, event: dict[str, Any]) -> None:
        """An event that arrived while waiting for a reply: ignored here, kept by subclasses that want it."""

    async def eval(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def until(self, expression: str, expected: Any) -> None:
        with trio.fail_after(20):  # hang guard: normally well under a second
            while await self.eval(expression) != expected:  # noqa: ASYNC110 (polls the browser)
                await trio.sleep(0.1)


P = TypeVar("P", bound=Page)


@contextlib.asynccontextmanager
async def chromium_page(
    nursery: trio.Nursery,
    tmp_path: Path,
    page_type: type[P] = Page,  # type: ignore[assignment]
) -> AsyncIterator[P]:
    """Chromium with its profile in tmp_path/chromium, its one page as a `page_type` (Page domain enabled)."""
    profile = tmp_path / "chromium"
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "about:blank"]
    run = partial(trio.run_process, cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    proc = await nursery.start(run)
    try:
        port_file = profile / "DevToolsActivePort"
        with trio.fail_after(30):  # hang guard: Chromium starts in a few seconds
            while not port_file.exists() or not port_file.read_text().strip():  # noqa: ASYNC110
                await trio.sleep(0.1)
        port = port_file.read_text().split()[0]
        async with httpx.AsyncClient(trust_env=False) as client:
            targets = (await client.get(f"http://127.0.0.1:{port}/json")).json()
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with open_websocket_url(ws_url, max_message_size=64 * 2**20) as ws:
            page = page_type(ws)
            await page.call("Page.enable")
            yield page
    finally:
        proc.terminate()

"""The dashboard in a real headless Chromium, driven over the DevTools protocol (trio-websocket): node cards
appear, update live when a heartbeat changes, and a screenshot is saved (desktop and phone width).

Needs Debian's `chromium` (installed by .ci/run); skipped with the reason otherwise, except under CI=true."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from harness import start_fleet
from trio_websocket import WebSocketConnection, open_websocket_url

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI") == "true":
    raise RuntimeError("the browser test must run under CI, but chromium is not installed")
pytestmark = pytest.mark.skipif(
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

    async def eval(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def until(self, expression: str, expected: Any) -> None:
        with trio.fail_after(20):  # hang guard: normally well under a second
            while await self.eval(expression) != expected:  # noqa: ASYNC110 (polls the browser)
                await trio.sleep(0.1)


async def test_dashboard_shows_the_fleet_live(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    profile = tmp_path / "chromium"
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "about:blank"]
    run = partial(trio.run_process, cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    proc = await nursery.start(run)
    try:
        port_file = profile / "DevToolsActivePort"
        with trio.fail_after(30):
            while not port_file.exists() or not port_file.read_text().strip():  # noqa: ASYNC110
                await trio.sleep(0.1)
        port = port_file.read_text().split()[0]
        async with httpx.AsyncClient(trust_env=False) as client:
            targets = (await client.get(f"http://127.0.0.1:{port}/json")).json()
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with open_websocket_url(ws_url, max_message_size=64 * 2**20) as ws:
            page = Page(ws)
            await page.call("Page.enable")
            await page.call("Page.navigate", url=fleet.url + "/dashboard")
            await page.until("document.querySelectorAll('[data-node-id]').length", 1)
            await page.until("document.querySelector('[data-node-id=\"n1\"]').dataset.state", "online")
            assert await page.eval("document.getElementById('conn').textContent") == "live"
            await fleet.beat("n1", draining=True)  # the card must change without a reload
            await page.until("document.querySelector('[data-node-id=\"n1\"]').dataset.state", "draining")
            shot = await page.call("Page.captureScreenshot", format="png")
            (tmp_path / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))
            await page.call(
                "Emulation.setDeviceMetricsOverride", width=390, height=800, deviceScaleFactor=1, mobile=True
            )
            width = await page.eval("document.documentElement.scrollWidth")
            assert width <= 400  # usable at phone width: no horizontal overflow
            shot = await page.call("Page.captureScreenshot", format="png")
            (tmp_path / "dashboard-phone.png").write_bytes(base64.b64decode(shot["data"]))
        assert (tmp_path / "dashboard.png").stat().st_size > 1000
    finally:
        proc.terminate()

"""The dashboard in a real headless Chromium, driven over the DevTools protocol (trio-websocket): node cards
appear, update live when a heartbeat changes, and a screenshot is saved (desktop and phone width).

Needs Debian's `chromium` (installed by .ci/run); skipped with the reason otherwise, except under CI=true."""

from __future__ import annotations

import base64
from pathlib import Path

import trio
from browser import chromium_page, skip_without_chromium
from harness import start_fleet

pytestmark = skip_without_chromium


async def test_dashboard_shows_the_fleet_live(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    async with chromium_page(nursery, tmp_path) as page:
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

"""The dashboard's good-guest block in headless Chromium: GPU, thermal, battery and owner state on the node
card and the learned week as a heat map (168 cells, the current hour outlined), live as heartbeats change."""

from __future__ import annotations

import base64
from pathlib import Path

import trio
from browser import chromium_page, skip_without_chromium
from harness import start_fleet

pytestmark = skip_without_chromium

GB = 2**30


async def test_node_card_shows_guest_state_and_week(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    week = [0.9 if d < 5 and 9 <= h < 17 else 0.05 for d in range(7) for h in range(24)]
    guest = {
        "gpu": [
            {
                "name": "RTX 4090",
                "util_percent": 37.0,
                "mem_used": 10 * GB,
                "mem_total": 24 * GB,
                "temp_c": 61,
            }
        ],
        "thermal": {"state": "serious", "throttling": True, "temp_c": 97.0, "cpu_freq_ratio": 0.4},
        "on_battery": True,
        "owner": {"cpu_percent": 42.0, "mem_bytes": 3 * GB, "busy_apps": ["blender"], "in_meeting": False},
        "memory_ceiling": 20 * GB,
        "capacity": week,
        "capacity_now": 10.5,
    }
    await fleet.beat("n1", **guest)
    async with chromium_page(nursery, tmp_path) as page:
        await page.call("Page.navigate", url=fleet.url + "/dashboard")
        card = "document.querySelector('[data-node-id=\"n1\"]')"
        await page.until(f"{card}.querySelectorAll('.week i').length", 168)
        text = await page.eval(f"{card}.querySelector('.guest').textContent")
        for part in (
            "RTX 4090 37%",
            "thermal serious (throttling)",
            "on battery",
            "owner CPU 42%",
            "blender",
        ):
            assert part in text, text
        assert (
            await page.eval(
                f"[...{card}.querySelectorAll('.week i')].findIndex(e => e.classList.contains('now'))"
            )
            == 10
        )
        busy = await page.eval(f"{card}.querySelectorAll('.week i')[10].style.opacity")
        free = await page.eval(f"{card}.querySelectorAll('.week i')[20].style.opacity")
        assert float(busy) > 0.8 > 0.2 > float(free)
        shot = await page.call("Page.captureScreenshot", format="png")
        (tmp_path / "dashboard-guest.png").write_bytes(base64.b64decode(shot["data"]))
        await fleet.beat("n1", **{**guest, "owner": {**guest["owner"], "in_meeting": True}})
        await page.until(f"{card}.querySelector('.guest').textContent.includes('in a meeting')", True)
        await fleet.beat("n1")  # a node that reports nothing: no block at all
        await page.until(f"{card}.querySelectorAll('.guest-block').length", 0)
    assert (tmp_path / "dashboard-guest.png").stat().st_size > 1000

"""The dashboard's Insight tab in headless Chromium: start a benchmark, watch its progress arrive over the
WebSocket, read the results and the recommendations, apply one; no JavaScript errors. Screenshot for the
record. Skipped without Chromium (see tests/browser.py)."""

from __future__ import annotations

import base64
from pathlib import Path

import trio
from browser import chromium_page, skip_without_chromium
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

pytestmark = skip_without_chromium

MODEL, IDLE = "llama3.2:3b", "qwen3:8b"

CATCH_ERRORS = """
window.__errors = [];
window.addEventListener('error', (e) => window.__errors.push(String(e.message)));
const origError = console.error;
console.error = (...a) => { window.__errors.push(a.join(' ')); origError(...a); };
"""


async def test_insight_tab_runs_a_benchmark_live(nursery: trio.Nursery, tmp_path: Path) -> None:
    nodes = {
        "fast": FakeOllama([FakeModel(MODEL), FakeModel(IDLE)], loaded=[MODEL, IDLE], chunk_delay=0.01),
        "slow": FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=0.05),
    }
    fleet = await start_fleet(nursery, tmp_path, nodes)
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    assert (await fleet.http.post(fleet.url + "/api/chat", json=chat)).status_code == 200
    while fleet.router.traces.written < 1:  # noqa: ASYNC110 (real traffic the recommender can see)
        await trio.sleep(0.05)
    async with chromium_page(nursery, tmp_path) as page:
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=CATCH_ERRORS)
        await page.call("Page.navigate", url=fleet.url + "/dashboard")
        await page.until("!!document.getElementById('insight-tab')", True)
        await page.eval("document.getElementById('insight-tab').click()")
        await page.until("document.getElementById('insight').classList.contains('active')", True)
        await page.until("document.querySelectorAll('#recommendations li').length > 0", True)
        await page.eval("document.getElementById('bench-models').value = 'llama3.2:3b'")
        await page.eval("document.getElementById('bench-parallel').value = '2'")
        await page.eval("document.getElementById('bench-start').click()")
        await page.until("document.getElementById('bench-status').dataset.status", "done")
        rows = await page.eval(
            "[...document.querySelectorAll('#bench-results tr[data-node]')].map(r => r.dataset.node)"
        )
        assert sorted(rows) == ["fast", "fast", "slow", "slow"]
        assert await page.eval("document.getElementById('bench-progress').value") == 1
        # a loaded model nobody asked for: the recommendation unloads it with one click
        item = f"#recommendations li[data-kind=unload][data-model='{IDLE}'] button"
        await page.eval(f'document.querySelector("{item}").click()')
        await page.until(f'document.querySelector("{item}").textContent', "done")
        assert IDLE not in nodes["fast"].loaded
        shot = await page.call("Page.captureScreenshot", format="png")
        (tmp_path / "insight.png").write_bytes(base64.b64decode(shot["data"]))
        assert await page.eval("window.__errors") == []
    assert (tmp_path / "insight.png").stat().st_size > 1000

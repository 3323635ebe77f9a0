"""Every dashboard tab in headless Chromium with a fleet under load (real router, three fake nodes, a background
load across two models and two apps): the Fleet cards show models hot/warm, running per model and request-kind
badges; the charts draw (series-coloured pixels on the canvas) with labelled axes and hover values; the range
selector changes the query; a benchmark started from the page reports progress live; the nodes' versions with
the odd one highlighted; no horizontal overflow at phone width; zero JavaScript errors (exceptions, console
errors and failed loads, collected over DevTools). A screenshot per tab goes to tmp_path, or to
$HERD_SCREENSHOTS when set. Skipped without Chromium (see tests/browser.py)."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

import trio
from browser import Page as BasePage
from browser import chromium_page, skip_without_chromium
from fake_ollama import FakeModel, FakeOllama
from harness import Fleet, start_fleet

pytestmark = skip_without_chromium

A, B, EMBED = "llama3.2:3b", "qwen3:8b", "nomic-embed-text:latest"
GB = 2**30
LOAD = 36  # requests in the background load, at least

# True when the chart in `el` has pixels of its first series' colour (#58a6ff): data drawn, not just a grid.
DRAWN = """(id) => {
  const c = document.querySelector('#' + id + ' canvas');
  if (!c || !c.width) return false;
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  // the series colours (charts.js PALETTE): a lone bucket's dots overlap, and the last one drawn hides the rest
  const colours = [[88, 166, 255], [63, 185, 80], [210, 153, 34], [248, 81, 73]];
  let n = 0;
  for (let i = 0; i < px.length; i += 4)
    if (px[i + 3] > 40 && colours.some(([r, g, b]) => Math.abs(px[i] - r) < 12 && Math.abs(px[i + 1] - g) < 12 && Math.abs(px[i + 2] - b) < 12)) n++;
  return n > 20;
}"""


# Text the page draws on canvases (uPlot draws axis labels and tick values there), per chart container id.
CANVAS_TEXT = """
window.__drawn = {};
const fillText = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
  const id = this.canvas.closest('.chart')?.id || '?';
  (window.__drawn[id] = window.__drawn[id] || new Set()).add(String(text));
  return fillText.call(this, text, ...rest);
};
"""


class Page(BasePage):
    """A DevTools page that keeps the errors it is told about while waiting for replies."""

    def __init__(self, ws: Any) -> None:
        super().__init__(ws)
        self.errors: list[str] = []

    def note(self, event: dict[str, Any]) -> None:
        p = event.get("params", {})
        if event.get("method") == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.errors.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif event.get("method") == "Runtime.consoleAPICalled" and p.get("type") == "error":
            self.errors.append("console.error: " + " ".join(str(a.get("value", a)) for a in p["args"]))
        elif event.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.errors.append(f"log: {p['entry']['text']} {p['entry'].get('url', '')}")

    async def shot(self, folder: Path, name: str) -> Path:
        data = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path = folder / f"{name}.png"
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    async def tab(self, name: str) -> None:
        await self.eval(f"document.getElementById('{name}-tab').click()")
        await self.until(f"document.getElementById('{name}').classList.contains('active')", True)

    async def drawn(self, chart: str) -> None:
        try:
            await self.until(f"({DRAWN})('{chart}')", True)
        except trio.TooSlowError:
            html = await self.eval(
                f"JSON.stringify(charts.get(document.getElementById('{chart}'))?.data.map(d => d.filter(v => v != null)))"
            )
            raise AssertionError(f"{chart} not drawn: {html}\nerrors: {self.errors}") from None


async def _load(fleet: Fleet, sent: list[int], enough: trio.Event) -> None:
    """Workers sending chats (two models, two apps) until LOAD are sent and the page has seen them run."""

    async def worker(i: int) -> None:
        while sent[0] < LOAD or not enough.is_set():
            n = sent[0] = sent[0] + 1
            model, tag = (A, B)[n % 2], ("billing", "search")[n % 3 == 0]
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False}
            resp = await fleet.http.post(fleet.url + "/api/chat", json=body, headers={"X-Herd-Tags": tag})
            assert resp.status_code == 200, resp.text
            sent[1] += 1

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(worker, i)


async def _beats(fleet: Fleet, extra: dict[str, dict[str, Any]], stop: trio.Event) -> None:
    """Heartbeats every 0.2 s (as agents would), so fleet frames carry the running requests."""
    while not stop.is_set():
        for node_id in fleet.nodes:
            await fleet.beat(node_id, **extra.get(node_id, {}))
        with trio.move_on_after(0.2):
            await stop.wait()


def _shots_dir(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("HERD_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def _pngs(folder: Path) -> list[Path]:
    return [p for p in folder.glob("*.png") if p.stat().st_size > 1000]


async def test_every_tab_with_a_fleet_under_load(nursery: trio.Nursery, tmp_path: Path) -> None:
    shots = _shots_dir(tmp_path)
    slow = {"chunk_delay": 0.04, "num_chunks": 6}
    nodes = {
        "alpha": FakeOllama([FakeModel(A), FakeModel(B)], loaded=[A, B], **slow),
        "beta": FakeOllama([FakeModel(A), FakeModel(EMBED)], loaded=[A, EMBED], **slow),  # EMBED idle: unload
        "gamma": FakeOllama([FakeModel(A)], loaded=[], **slow),
    }
    fleet = await start_fleet(nursery, tmp_path, nodes)
    gpu = [
        {"name": "RTX 4090", "util_percent": 63.0, "mem_used": 10 * GB, "mem_total": 24 * GB, "temp_c": 61}
    ]
    host = {"cpu_percent": 37.0, "cpu_count": 8, "mem_total": 64 * GB, "mem_available": 20 * GB}
    extra = {
        "alpha": {"gpu": gpu, "host": {**host, "disk_free": 100 * GB, "load": [1.0, 1.0, 1.0]}},
        "gamma": {"agent_version": "0.0.9-old", "backend_version": "0.11.0"},
    }
    async with chromium_page(nursery, tmp_path, Page) as page:
        for domain in ("Runtime", "Log"):  # Page is enabled already
            await page.call(f"{domain}.enable")
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=CANVAS_TEXT)
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        await page.call("Page.navigate", url=fleet.url + "/dashboard")
        await page.until("document.querySelectorAll('[data-node-id]').length", 3)

        # Fleet under load: running per model, the queue table, kinds and hot/warm badges, load bars
        sent, enough, stop = [0, 0], trio.Event(), trio.Event()  # sent, answered
        async with trio.open_nursery() as load:
            load.start_soon(_beats, fleet, extra, stop)
            load.start_soon(_load, fleet, sent, enough)
            await page.until("document.querySelectorAll('#nodes .running').length > 0", True)
            queue = await page.eval("document.getElementById('queue').textContent")
            assert A in queue or B in queue, queue
            await page.shot(shots, "fleet-under-load")
            enough.set()
            with trio.fail_after(30):  # hang guard: the load ends once LOAD are sent
                while sent[1] < sent[0]:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            stop.set()
        with trio.fail_after(20):  # hang guard: the writer is another task
            while fleet.router.traces.written < sent[0]:  # noqa: ASYNC110
                await trio.sleep(0.05)
        await fleet.beat("alpha", **extra["alpha"])
        await fleet.beat("gamma", **extra["gamma"])
        await page.tab("fleet")  # reload: the last hour's tiles
        await page.until("document.querySelector('[data-tile=hour] b')?.textContent", str(sent[0]))
        alpha = "document.querySelector('[data-node-id=\"alpha\"]')"
        models = (
            "[...document.querySelectorAll('[data-node-id=\"{}\"] ul.models li')].map(li => li.textContent)"
        )
        await page.until(models.format("alpha"), [f"{A}hottext", f"{B}hottext"])  # idle again: none running
        await page.until(models.format("beta"), [f"{A}hottext", f"{EMBED}hotembed"])
        bars = await page.eval(f"[...{alpha}.querySelectorAll('.load .lbl')].map(e => e.textContent)")
        assert bars == ["CPU", "Mem", "GPU"] and "63%" in await page.eval(f"{alpha}.textContent")
        await page.shot(shots, "fleet")

        # Trends: four charts with data, axes labelled with units, hover values, the range selector
        await page.tab("trends")
        for chart in ("chart-requests", "chart-tps", "chart-ttft", "chart-latency"):
            await page.drawn(chart)
        for chart, unit in (
            ("requests", "requests"),
            ("tps", "tokens/s"),
            ("ttft", "s"),
            ("latency", "s"),
        ):
            texts = await page.eval(f"[...window.__drawn['chart-{chart}']]")
            assert unit in texts and "0" in texts, (chart, texts)  # the y axis: its unit and ticks
            assert any(re.fullmatch(r"\d?\d(:\d\d)?(am|pm)?", t) for t in texts), texts  # x: times of day
        titles = await page.eval("[...document.querySelectorAll('#trends .u-title')].map(e => e.textContent)")
        assert titles[0] == "Requests per 15 min" and "Time to first token" in titles, titles
        assert await page.eval("document.getElementById('trends').dataset.query") == (
            "/fleet/analytics/series?hours=24"
        )
        hover = """(() => { const u = charts.get(document.getElementById('chart-requests'));
          const i = u.data[1].findLastIndex(v => v > 0);
          u.setCursor({left: u.valToPos(u.data[0][i], 'x'), top: 20});
          return [u.data[1][i], [...document.querySelectorAll('#chart-requests .u-legend .u-value')].map(e => e.textContent)]; })()"""
        count, values = await page.eval(hover)  # the load may straddle two 15-minute buckets
        assert count > 0 and values[1:] == [f"{count} requests", "0 requests"], values
        await page.eval("document.querySelector('#trend-range [data-hours=\"720\"]').click()")
        await page.until(
            "document.getElementById('trends').dataset.query", "/fleet/analytics/series?hours=720"
        )
        await page.until("document.querySelector('#chart-requests .u-title').textContent", "Requests per 6 h")
        await page.drawn("chart-requests")
        options = await page.eval("[...document.querySelectorAll('#trend-filter option')].map(o => o.value)")
        assert (
            options
            == ["", f"model={A}", f"model={B}", "node=alpha", "node=beta", "node=gamma"][: len(options)]
        )
        assert f"model={B}" in options and "node=alpha" in options, options
        await page.eval(
            f"const s = document.getElementById('trend-filter'); s.value = 'model={B}';"
            " s.dispatchEvent(new Event('change'))"
        )
        await page.until(
            "document.getElementById('trends').dataset.query",
            f"/fleet/analytics/series?hours=720&model={B.replace(':', '%3A')}",
        )
        await page.until(
            "document.getElementById('trend-summary').textContent.split(' ')[0]",
            str(sent[0] - sent[0] // 2),  # odd numbers went to B
        )
        await page.shot(shots, "trends")

        # Models: share chart, the table, a model's nodes and history
        await page.tab("models")
        await page.drawn("chart-share")
        share = await page.eval("[...document.querySelectorAll('#models-table a')].map(a => a.textContent)")
        assert sorted(share) == [A, B], share
        await page.eval(f"document.querySelector('#models-table a[data-model=\"{A}\"]').click()")
        await page.until("document.getElementById('model-detail').hidden", False)
        await page.drawn("chart-model")
        nodes_of_a = await page.eval(
            "[...document.querySelectorAll('#model-nodes tr td:first-child')].map(e => e.textContent)"
        )
        assert sorted(nodes_of_a) == ["alpha", "beta", "gamma"], nodes_of_a
        await page.shot(shots, "models")

        # Apps: both tags over the days
        await page.tab("apps")
        await page.drawn("chart-apps")
        legend = await page.eval(
            "[...document.querySelectorAll('#chart-apps .u-legend .u-label')].map(e => e.textContent)"
        )
        assert sorted(legend[1:]) == ["billing", "search"], legend
        await page.shot(shots, "apps")

        # Benchmarks: started from the page, progress arrives live over the WebSocket
        await page.tab("insight")
        await page.eval(
            "window.__seen = []; new MutationObserver(() => window.__seen.push("
            "document.getElementById('bench-status').textContent)).observe("
            "document.getElementById('bench-status'), {childList: true, characterData: true, subtree: true})"
        )
        await page.eval(f"document.getElementById('bench-models').value = '{A}'")
        await page.eval("document.getElementById('bench-parallel').value = '2'")
        await page.eval("document.getElementById('bench-start').click()")
        await page.until("document.getElementById('bench-status').dataset.status", "done")
        seen = await page.eval("[...new Set(window.__seen)]")
        steps = {s.split(" ")[2] for s in seen if " running " in s}
        done = [s for s in seen if re.search(r" done (\d+)/\1$", s)]
        assert len(steps) >= 2 and done, seen  # progress seen step by step, then the end
        await page.drawn("chart-bench")
        await page.shot(shots, "benchmarks")

        # Recommendations (counted on the tab button), Health, Settings (versions), Traces
        await page.tab("recs")
        await page.until(
            f"!!document.querySelector('#recommendations li[data-kind=unload][data-model=\"{EMBED}\"]')",
            True,
        )
        assert int(await page.eval("document.getElementById('recs-count').textContent")) >= 1
        await page.shot(shots, "recommendations")
        await page.tab("health")
        await page.until("document.querySelectorAll('#findings li').length > 0", True)
        await page.shot(shots, "health")
        await page.tab("settings")
        await page.until("document.querySelectorAll('#versions tr').length", 4)
        odd = await page.eval("[...document.querySelectorAll('#versions .differs')].map(e => e.textContent)")
        assert odd == ["0.0.9-old", "0.11.0"], odd
        assert "differs from the rest: gamma" in await page.eval(
            "document.getElementById('versions-note').textContent"
        )
        await page.shot(shots, "settings")
        await page.tab("traces")
        await page.until("document.querySelectorAll('#traces-table tr').length > 10", True)
        await page.shot(shots, "traces")

        # Phone width: no horizontal overflow on any tab, charts follow the width
        await page.call(
            "Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True
        )
        for tab in (
            "fleet",
            "trends",
            "models",
            "apps",
            "insight",
            "recs",
            "health",
            "settings",
            "traces",
        ):
            await page.tab(tab)
            await trio.sleep(0.3)  # the charts' resize is debounced
            width = await page.eval("document.documentElement.scrollWidth")
            assert width <= 390, (tab, width)
            if tab in ("fleet", "trends"):
                await page.shot(shots, f"{tab}-phone")
        await page.call("Runtime.evaluate", expression="0")  # drain pending events
        assert page.errors == []
    assert len(_pngs(shots)) >= 11

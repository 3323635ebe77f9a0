"""GET /metrics: Prometheus text format with request counters, histograms and live gauges."""

from __future__ import annotations

from pathlib import Path

import trio
from harness import start_fleet

MODEL = "llama3.2:3b"


def parse(text: str) -> dict[str, float]:
    """Samples of the text exposition format: every non-comment line is `name{labels} value`."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


async def test_metrics_after_some_traffic(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    for _ in range(2):
        await fleet.http.post(fleet.url + "/api/chat", json={"model": MODEL, "messages": [], "stream": False})
    await fleet.http.post(fleet.url + "/api/chat", json={"model": "ghost", "messages": []})
    recent = fleet.router.services.recorder.recent
    with trio.fail_after(10):
        while len(recent) < 3:  # noqa: ASYNC110 (records finish in the request's own task)
            await trio.sleep(0.01)
    resp = await fleet.http.get(fleet.url + "/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse(resp.text)
    assert samples[f'herd_requests_total{{model="{MODEL}",node="n1",status="200"}}'] == 2
    assert (
        samples['herd_requests_total{model="(unknown)",node="none",status="404"}'] == 1
    )  # one label for all
    assert samples[f'herd_request_duration_seconds_count{{model="{MODEL}"}}'] == 2
    assert samples[f'herd_request_duration_seconds_bucket{{model="{MODEL}",le="+Inf"}}'] == 2
    assert samples[f'herd_tokens_total{{model="{MODEL}",kind="completion"}}'] > 0
    assert samples['herd_node_up{node="n1",state="online"}'] == 1
    assert "# TYPE herd_queue_depth gauge" in resp.text

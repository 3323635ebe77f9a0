"""Analytics over the trace database: overview, trends, per model/node/app, traces with filters, bad params."""

from __future__ import annotations

from pathlib import Path

import trio
from harness import start_fleet

MODEL = "llama3.2:3b"


async def test_analytics_endpoints(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path)
    for tag in ("billing", "billing", "search"):
        await fleet.http.post(
            fleet.url + "/api/chat",
            json={"model": MODEL, "messages": [], "stream": False},
            headers={"X-Herd-Tags": tag},
        )
    await fleet.http.post(fleet.url + "/api/chat", json={"model": "ghost", "messages": []})
    with trio.fail_after(10):
        while fleet.router.traces.written < 4:  # noqa: ASYNC110 (the writer is another task)
            await trio.sleep(0.01)

    async def get(path: str) -> dict:
        resp = await fleet.http.get(fleet.url + path)
        assert resp.status_code == 200, resp.text
        return resp.json()

    over = await get("/fleet/analytics/overview?hours=24")
    assert over["requests"] == 4 and over["errors"] == 1 and over["error_rate"] == 0.25
    assert over["p50_ms"] > 0 and over["completion_tokens"] > 0 and over["nodes"] == 1 and over["models"] == 2
    trend = await get("/fleet/analytics/trends?hours=6")
    assert len(trend["buckets"]) == 6 and trend["buckets"][-1]["requests"] == 4
    models = (await get("/fleet/analytics/models"))["models"]
    assert models[0]["model"] == MODEL and models[0]["requests"] == 3
    assert (await get("/fleet/analytics/nodes"))["nodes"][0]["node"] == "n1"
    apps = {a["tag"]: a for a in (await get("/fleet/analytics/apps"))["apps"]}
    assert apps["billing"]["requests"] == 2 and apps["search"]["requests"] == 1 and apps["billing"]["daily"]
    traces = (await get("/fleet/traces?limit=10&status=404"))["traces"]
    # a model the fleet does not know is one analytics key, not one per name a caller makes up
    assert [(t["model"], t["requested_model"]) for t in traces] == [("(unknown)", "ghost")]
    assert len((await get("/fleet/traces?tag=billing"))["traces"]) == 2
    for bad in (
        "/fleet/analytics/overview?hours=0",
        "/fleet/analytics/trends?hours=x",
        "/fleet/traces?limit=0",
        "/fleet/traces?status=abc",
    ):
        resp = await fleet.http.get(fleet.url + bad)
        assert resp.status_code == 400 and "error" in resp.json()

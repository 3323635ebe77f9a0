"""`herd bench`: the progress line and table (pure), and the command against a real router."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from fake_ollama import FakeModel, FakeOllama
from harness import start_fleet

from herd.benchcmd import render, table
from herd.cli import main
from herd.insight import prompts

MODEL = "llama3.2:3b"


def test_progress_line_and_table() -> None:
    run = {"steps_done": 3, "steps_total": 12, "current": {"node": "a", "model": MODEL, "parallel": 4}}
    assert render(run, width=8) == f"[##......] 3/12  a {MODEL} x4"
    assert render({**run, "waiting": "1 request(s) waiting"}, width=8).endswith(
        "(paused: 1 request(s) waiting)"
    )
    rows = [
        {"node_id": "slow", "model": MODEL, "parallel": 1, "gen_tps": 10.0, "ttft_s": 1.0, "errors": 0},
        {"node_id": "fast", "model": MODEL, "parallel": 1, "gen_tps": 50.0, "ttft_s": 0.25, "errors": 0},
    ]
    lines = table(rows).splitlines()
    assert lines[0].split()[:3] == ["node", "model", "par"]
    assert lines[1].startswith("fast") and "50.0" in lines[1] and "0.25" in lines[1]
    assert lines[2].startswith("slow") and " - " in lines[2]  # unmeasured columns


async def test_herd_bench_command_against_a_router(
    nursery: trio.Nursery, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = {
        "fast": FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=0.001),
        "slow": FakeOllama([FakeModel(MODEL)], loaded=[MODEL], chunk_delay=0.004),
    }
    fleet = await start_fleet(nursery, tmp_path, nodes)
    argv = ["bench", "--router-url", fleet.url, "--model", MODEL, "--parallel", "2"]
    rc = await trio.to_thread.run_sync(lambda: main(argv, env={}))
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "benchmark " in err and f"{2 * (len(prompts.PROMPTS) + 2)}/{2 * (len(prompts.PROMPTS) + 2)}" in err
    lines = out.splitlines()
    assert lines[0].startswith("node") and lines[1].startswith("fast") and lines[2].startswith("slow")
    assert len(lines) == 5  # two nodes, alone and two at once
    while fleet.router.traces.written < 5:  # noqa: ASYNC110 (the writer stores 4 results and the run)
        await trio.sleep(0.05)
    fleet.router.bench.runs.clear()  # as after a restart: the list comes from the trace DB
    (stored,) = (await fleet.http.get(fleet.url + "/fleet/benchmarks")).json()["runs"]
    assert stored["status"] == "done" and len(stored["results"]) == 4
    one = (await fleet.http.get(f"{fleet.url}/fleet/benchmarks/{stored['id']}")).json()
    assert one["id"] == stored["id"] and one["results"] == stored["results"]
    rc = await trio.to_thread.run_sync(
        lambda: main(["bench", "--router-url", fleet.url, "--node", "x"], env={})
    )
    assert rc == 1 and "no node 'x'" in capsys.readouterr().err

"""Property-based fuzzing of every route (`tests/fuzzing.py`) against a real router with fake nodes: no 500 (no
5xx but the 502-504 of nodes that fail on purpose), every error answer has a JSON body, and a rejected request
leaves the fleet as it was (nodes, models, media, paused flags).

Fast by default (300 examples, a fixed seed, a few seconds); `HERD_FUZZ_EXAMPLES=20000` (and `HERD_FUZZ_SEED`)
for a long run: `python3 tasks.py fuzz`. `bench/fuzz.py` counts the same against a router process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import trio
from fuzzing import Req, fleet_state, fuzz_fleet, problem, run
from harness import start_fleet

EXAMPLES = int(os.environ.get("HERD_FUZZ_EXAMPLES", "300"))
SEED = int(os.environ.get("HERD_FUZZ_SEED", "11"))


async def test_fuzz_every_route(nursery: trio.Nursery, tmp_path: Path) -> None:
    fleet = await start_fleet(nursery, tmp_path, {})
    fakes = fuzz_fleet()
    await fakes.start(nursery)
    await fakes.beat(fleet.http, fleet.url)

    async def keep_beating() -> None:  # a long run outlives the 30 s after which silent nodes go offline
        while True:
            await trio.sleep(5)
            await fakes.beat(fleet.http, fleet.url)

    nursery.start_soon(keep_beating)
    statuses: dict[int, int] = {}

    def check(
        client: httpx.Client, state: list[list[tuple[object, ...]]]
    ) -> Callable[[Req, httpx.Response], None]:
        def on_answer(req: Req, resp: httpx.Response) -> None:
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            found = problem(req, resp)
            assert found is None, f"{req!r} -> {found}"
            now = fleet_state(client.get(fleet.url + "/fleet/status").json())
            if resp.status_code >= 400:
                assert now == state[0], f"rejected {req!r} changed the fleet"
            state[0] = now

        return on_answer

    def fuzz() -> None:
        with httpx.Client(trust_env=False, timeout=30) as client:
            state = [fleet_state(client.get(fleet.url + "/fleet/status").json())]
            run(fleet.url, fakes.ollama.url, EXAMPLES, check(client, state), seed=SEED)

    await trio.to_thread.run_sync(fuzz)
    assert sum(statuses.values()) >= EXAMPLES // 2, statuses
    # the run reached past validation: some requests were served, some rejected
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0, statuses
    metrics = await fleet.http.get(fleet.url + "/metrics")
    assert metrics.status_code == 200 and "herd_unexpected_errors_total 0" in metrics.text

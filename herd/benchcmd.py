"""`herd bench [--node N] [--model M] [--parallel N]`: start a fleet benchmark on the router, draw its progress
as a bar on stderr until it ends, then print the results as a table on stdout. Ctrl-C cancels the run on the
router. A plain synchronous client: one POST, then polling `GET /fleet/benchmarks/<id>`."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import httpx

BAR = 30
POLL = 0.5
COLUMNS = (
    ("node", "node_id", "{}"),
    ("model", "model", "{}"),
    ("par", "parallel", "{}"),
    ("ttft s", "ttft_s", "{:.2f}"),
    ("prompt tok/s", "prompt_tps", "{:.0f}"),
    ("gen tok/s", "gen_tps", "{:.1f}"),
    ("total tok/s", "aggregate_tps", "{:.1f}"),
    ("load s", "load_s", "{:.2f}"),
    ("errors", "errors", "{}"),
)


def render(run: dict[str, Any], width: int = BAR) -> str:
    """One progress line for a run as the router reports it (pure)."""
    done, total = run.get("steps_done") or 0, run.get("steps_total") or 0
    filled = min(width, width * done // total) if total else 0
    line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
    current = run.get("current")
    if current:
        line += f"  {current['node']} {current['model']} x{current['parallel']}"
    if run.get("waiting"):
        line += f"  (paused: {run['waiting']})"
    return line


def table(results: Sequence[dict[str, Any]]) -> str:
    """The results as an aligned text table, fastest generation first per model (pure)."""
    rows = sorted(results, key=lambda r: (r["model"], r["parallel"], -(r.get("gen_tps") or 0.0)))
    cells = [[h for h, _, _ in COLUMNS]]
    for r in rows:
        cells.append([("-" if r.get(k) is None else fmt.format(r[k])) for _, k, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _error(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error", resp.text)
    except ValueError:
        return resp.text
    return str(err.get("message", err)) if isinstance(err, dict) else str(err)


def bench(
    router_url: str,
    nodes: Sequence[str] | None,
    models: Sequence[str] | None,
    parallel: int | None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    admin_key: str | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    base = router_url.rstrip("/") + "/fleet/benchmarks"
    body: dict[str, Any] = {}
    if nodes:
        body["nodes"] = list(nodes)
    if models:
        body["models"] = list(models)
    if parallel is not None:
        body["parallel"] = parallel
    run_id = None
    try:
        with httpx.Client(
            timeout=httpx.Timeout(10.0),
            trust_env=False,
            headers={"X-Herd-Admin-Key": admin_key} if admin_key else None,
        ) as client:
            resp = client.post(base, json=body)
            if resp.status_code != 202:
                print(f"herd bench: {_error(resp)}", file=err)
                return 1
            run_id = resp.json()["id"]
            print(f"benchmark {run_id}", file=err)
            last = ""
            try:
                while True:
                    run = client.get(f"{base}/{run_id}").json()
                    text = render(run)
                    if text != last:
                        err.write("\r" + text.ljust(len(last)))
                        err.flush()
                        last = text
                    if run["status"] in ("done", "cancelled", "failed"):
                        break
                    time.sleep(POLL)
            except KeyboardInterrupt:
                client.delete(f"{base}/{run_id}")
                print(f"\nherd bench: cancelled {run_id}", file=err)
                return 130
            print(file=err)
            if run["results"]:
                print(table(run["results"]), file=out)
            if run["status"] != "done":
                print(f"herd bench: run {run['status']}: {run.get('error') or ''}".rstrip(": "), file=err)
                return 1
            return 0
    except httpx.HTTPError as exc:
        print(f"herd bench: cannot reach the router at {router_url}: {exc}", file=err)
        return 2

"""`herd pull MODEL [--node N]`: ask the router to pull a model onto the best node (or a named one) and draw
Ollama's NDJSON progress as a bar on the terminal. A plain synchronous client: one request, one stream."""

from __future__ import annotations

import json
import sys
from typing import TextIO

import httpx

BAR = 30


def render(step: dict[str, object], width: int = BAR) -> str:
    """One progress line for one NDJSON step (pure)."""
    status = str(step.get("status", ""))
    total, done = step.get("total"), step.get("completed")
    if isinstance(total, int) and total > 0 and isinstance(done, int):
        filled = min(width, width * done // total)
        return f"{status:<28} [{'#' * filled}{'.' * (width - filled)}] {100 * done // total:3d}%"
    return status


def pull(
    router_url: str, model: str, node: str | None, out: TextIO = sys.stderr, *, admin_key: str | None = None
) -> int:
    body: dict[str, object] = {"model": model, "stream": True}
    headers = {"X-Herd-Admin-Key": admin_key} if admin_key else {}
    if node:
        body["node"] = node
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(10.0, read=None), trust_env=False) as client,
            client.stream("POST", router_url.rstrip("/") + "/api/pull", json=body, headers=headers) as resp,
        ):
            if resp.status_code != 200:
                resp.read()
                try:
                    message = resp.json().get("error", resp.text)
                except ValueError:
                    message = resp.text
                print(f"herd pull: {message}", file=out)
                return 1
            print(f"pulling {model} on {resp.headers.get('x-herd-node', '?')}", file=out)
            last = ""
            for line in resp.iter_lines():
                if not line.strip():
                    continue
                step = json.loads(line)
                if "error" in step:
                    print(f"\nherd pull: {step['error']}", file=out)
                    return 1
                text = render(step)
                if text != last:
                    out.write("\r" + text.ljust(len(last)))
                    out.flush()
                    last = text
            print(file=out)
            return 0 if last == "success" else 1
    except httpx.HTTPError as exc:
        print(f"herd pull: cannot reach the router at {router_url}: {exc}", file=out)
        return 2

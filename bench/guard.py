"""What the web edge's guard costs per request: the same in-memory ASGI app called bare and through
`herd.web.guard.Guard`, in the same run, for the cases that matter (no config; API keys with limits; a browser
origin that gets CORS headers; a 100-chunk streamed response).

    .venv/bin/python bench/guard.py [--requests 20000]

Prints microseconds of CPU per request for each case and the difference to the bare app. No sockets: this is
the guard's own cost, which the proxy benchmark (`bench/proxy.py`) includes end to end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from herd.guard.keyfile import ApiKeys  # noqa: E402
from herd.guard.keys import ApiKey, Secret  # noqa: E402
from herd.guard.origins import OriginPolicy  # noqa: E402
from herd.guard.rules import Policy  # noqa: E402
from herd.web.guard import Guard  # noqa: E402


def make_app(chunks: int) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        for _ in range(chunks - 1):
            await send({"type": "http.response.body", "body": b"x" * 64, "more_body": True})
        await send({"type": "http.response.body", "body": b"x" * 64})

    return app


def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    base = [(b"host", b"127.0.0.1:11435"), (b"content-type", b"application/json"), (b"content-length", b"80")]
    return {
        "type": "http",
        "method": "POST",
        "path": "/api/chat",
        "scheme": "http",
        "headers": base + headers,
    }


async def run(app: Any, headers: list[tuple[bytes, bytes]], n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{" + b"x" * 78 + b"}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    start = time.process_time()
    for _ in range(n):
        await app(scope(headers), receive, send)
    return (time.process_time() - start) / n * 1e6


def guard(app: Any, keys: tuple[ApiKey, ...] = ()) -> Guard:
    policy = Policy(OriginPolicy(), check_host=True, own_names=("box",), max_body=100 * 2**20, admin_key=None)
    return Guard(app, policy, ApiKeys(keys))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    n = parser.parse_args().requests
    keys = tuple(ApiKey(f"app{i}", Secret(f"sk-{i:040d}"), rpm=10**9, concurrent=10**6) for i in range(20))
    bearer = [(b"authorization", b"Bearer " + keys[-1].key.value.encode())]
    origin = [(b"origin", b"http://localhost:5173")]
    cases = [
        ("small response, no config", make_app(1), guard(make_app(1)), []),
        ("small response, 20 API keys (rpm, concurrent)", make_app(1), guard(make_app(1), keys), bearer),
        ("small response, allowed browser origin (CORS)", make_app(1), guard(make_app(1)), origin),
        ("100-chunk stream, 20 API keys", make_app(100), guard(make_app(100), keys), bearer),
    ]
    print(f"{n} requests per case; CPU µs per request\n")
    print("| case | bare app | through the guard | guard adds |")
    print("|---|---:|---:|---:|")
    for name, bare, guarded, headers in cases:
        base = await run(bare, headers, n)
        with_guard = await run(guarded, headers, n)
        print(f"| {name} | {base:.1f} | {with_guard:.1f} | **+{with_guard - base:.1f}** |")


if __name__ == "__main__":
    trio.run(main)

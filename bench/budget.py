"""Where herd's CPU goes per request: a router profile (`bench/proxy.py --profile`) cut into the stages of a
proxied request, in µs per request (profiled, so inflated; the shares are what to read).

    .venv/bin/python -m bench.budget bench/results/router-*.prof

herd's own stages are inclusive times of the functions that do them (sync, or async but only ever waiting on
the node, whose wait is not CPU); Quart/werkzeug and the fast-path dispatcher are their own code's time; the
server (hypercorn, its h11), socket system calls and Trio's scheduler are what is left, which the bare
pass-through pays too. The main thread only: the trace writer's SQLite thread is not in a cProfile.
"""

from __future__ import annotations

import argparse
import pstats
from pathlib import Path

Key = tuple[str, int, str]


class Profile:
    def __init__(self, path: Path) -> None:
        self.stats: dict[Key, tuple[int, int, float, float, object]] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]

    def _match(self, file: str, func: str) -> list[Key]:
        return [k for k in self.stats if k[0].endswith(file) and k[2] == func]

    def ct(self, file: str, func: str) -> float:
        """Inclusive seconds of every function `func` defined in a file ending with `file`."""
        return sum(self.stats[k][3] for k in self._match(file, func))

    def ct_outer(self, file: str, func: str) -> float:
        """Inclusive seconds of the outermost of several same-named functions (one calls the others)."""
        return max((self.stats[k][3] for k in self._match(file, func)), default=0.0)

    def calls(self, file: str, func: str) -> int:
        return sum(self.stats[k][1] for k in self._match(file, func))

    def own(self, *parts: str) -> float:
        """Self seconds of every function in files whose path contains one of `parts`."""
        return sum(v[2] for k, v in self.stats.items() if any(p in k[0] for p in parts))

    def total(self) -> float:
        return sum(v[2] for v in self.stats.values())

    def builtin(self, name: str) -> float:
        return sum(v[2] for k, v in self.stats.items() if k[0] == "~" and name in k[2])


def budget(p: Profile) -> tuple[int, list[tuple[str, float]]]:
    n = p.calls("herd/routing/record.py", "begin") or 1
    upstream_body = p.ct("herd/backends/rawhttp.py", "__anext__")
    rows = [
        (
            "body parse and validation",
            p.ct("herd/dialects/ollama.py", "parse_body")
            + p.ct("herd/dialects/tags.py", "extract_tags")
            + p.ct("herd/dialects/ollama.py", "validate_chat")
            + p.ct("herd/dialects/ollama.py", "validate_generate"),
        ),
        ("policies", p.ct("herd/routing/policies.py", "plan")),
        (
            "scoring",
            p.ct("herd/routing/proxy.py", "ranked")
            + p.ct("herd/routing/estimate.py", "request_facts")
            + p.ct("herd/routing/affinity.py", "lookup"),
        ),
        (
            "slot and queue",
            p.ct("herd/routing/queue.py", "admit")
            - p.ct("herd/routing/proxy.py", "ranked")
            + p.ct("herd/routing/slots.py", "release"),
        ),
        ("upstream client", p.ct("herd/backends/rawhttp.py", "stream") + upstream_body),
        (
            "relay",
            p.ct("herd/routing/relay.py", "whole")
            + p.ct("herd/routing/relay.py", "ndjson")
            + p.ct("herd/routing/lines.py", "prime")
            - upstream_body,
        ),
    ]
    sinks = {
        "metrics": p.ct_outer("herd/metrics.py", "observe"),
        "trace write (queueing the row)": p.ct("herd/store/traces.py", "offer"),
        "other record sinks (dashboard, latency store, affinity)": p.ct(
            "herd/observe/broadcaster.py", "on_request"
        )
        + p.ct("herd/store/latency.py", "offer")
        + p.ct("herd/routing/affinity.py", "sink"),
    }
    record = p.ct("herd/routing/record.py", "begin") + p.ct("herd/routing/record.py", "finish")
    rows.append(("record (begin, finish, latency book)", record - sum(sinks.values())))
    rows += list(sinks.items())
    rows.append(("guard", p.own("herd/web/guard.py", "herd/guard/")))
    rows.append(("ASGI/Quart (+ werkzeug)", p.own("/quart/", "/quart_trio/", "/werkzeug/", "/flask/")))
    rows.append(("fast-path dispatcher and handler glue", p.own("herd/web/fastpath.py", "herd/inference/")))
    rows.append(("request scope wrapper (herd/web/server.py)", p.own("herd/web/server.py")))
    # waiting in epoll is not CPU; imports at start-up are not per request
    busy = p.total() - p.builtin("poll") - p.ct_outer("importlib._bootstrap>", "_find_and_load")
    socket_io = p.builtin("'send' of '_socket") + p.builtin("'recv' of '_socket")
    rows.append(("socket system calls (send, recv)", socket_io))
    rows.append(("server (hypercorn, h11), Trio scheduling, the rest", busy - sum(v for _, v in rows)))
    return n, rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.budget", description=__doc__)
    parser.add_argument("profile", type=Path, nargs="+", help="router profiles; several give several columns")
    args = parser.parse_args(argv)
    columns = [budget(Profile(path)) for path in args.profile]
    head = "| stage | " + " | ".join(f"{p.name}: µs/req (share)" for p in args.profile) + " |"
    print(head + "\n|---|" + "---:|" * len(columns))
    for i, (name, _) in enumerate(columns[0][1]):
        cells = []
        for n, rows in columns:
            total = sum(v for _, v in rows) or 1
            cells.append(f"{rows[i][1] * 1e6 / n:.0f} ({rows[i][1] / total:.0%})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    cells = [f"{sum(v for _, v in rows) * 1e6 / n:.0f} ({n} requests)" for n, rows in columns]
    print("| total (profiled) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()


# py-spy's collapsed stacks (`py-spy record -f raw`): each sample goes to the innermost frame that belongs to a
# stage; Trio, the standard library and anything unlisted are transparent (they count for their caller).
STAGES = [
    ("herd/backends/rawhttp.py", "upstream client"),
    ("herd/routing/relay.py", "relay"),
    ("herd/routing/lines.py", "relay"),
    ("herd/routing/native.py", "relay"),
    ("herd/metrics.py", "metrics"),
    ("herd/store/", "trace write (row, queue, SQLite thread)"),
    ("herd/observe/", "other record sinks (dashboard, latency store, affinity)"),
    ("herd/routing/affinity.py (sink", "other record sinks (dashboard, latency store, affinity)"),
    ("herd/routing/record.py", "record (begin, finish, latency book)"),
    ("herd/routing/latency.py (observe", "record (begin, finish, latency book)"),
    ("herd/routing/score.py", "scoring"),
    ("herd/routing/estimate.py", "scoring"),
    ("herd/routing/capacity.py", "scoring"),
    ("herd/routing/latency.py", "scoring"),
    ("herd/routing/affinity.py", "scoring"),
    ("herd/routing/select.py", "scoring"),
    ("herd/routing/queue.py", "slot and queue"),
    ("herd/routing/slots.py", "slot and queue"),
    ("herd/routing/proxy.py", "slot and queue, attempt bookkeeping"),
    ("herd/routing/policies.py", "policies"),
    ("herd/dialects/", "body parse and validation"),
    ("herd/web/guard.py", "guard"),
    ("herd/guard/", "guard"),
    ("herd/web/fastpath.py", "fast-path dispatcher, handlers"),
    ("herd/inference/", "fast-path dispatcher, handlers"),
    ("herd/web/server.py", "request scope wrapper (herd/web/server.py)"),
    ("herd/reqscope.py", "fast-path dispatcher, handlers"),
    (
        "herd/web/connections.py",
        "server (hypercorn, its h11), both pay it",
    ),  # herd's subclass of its TCPServer
    ("quart", "ASGI/Quart (+ werkzeug), Quart handlers"),
    ("werkzeug", "ASGI/Quart (+ werkzeug), Quart handlers"),
    ("herd/web/", "ASGI/Quart (+ werkzeug), Quart handlers"),
    ("hypercorn/", "server (hypercorn, its h11), both pay it"),
    ("h11/", "server (hypercorn, its h11), both pay it"),
]
IDLE = (  # waiting, not working: the event loop's epoll, idle worker threads, the log queue's listener
    "epoll.poll",
    "get_events (trio/_core/_io_epoll.py",
    "_run.py:2926)",
    "_thread_cache.py:211)",
    "QueueListener.dequeue",
)


def _stage(frames: list[str]) -> str:
    for frame in reversed(frames):
        for marker, stage in STAGES:
            if marker in frame:
                if stage.startswith("server") and any("rawhttp.py" in f for f in frames):
                    return "upstream client"
                return stage
    return "Trio scheduler, the rest"


def spy_budget(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if any(mark in frames[-1] for mark in IDLE):
            continue
        stage = _stage(frames)
        counts[stage] = counts.get(stage, 0) + int(n)
    return counts

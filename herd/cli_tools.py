"""`herd pull` and `herd bench`: the command-line tools that talk to a running router (their flags; the
commands themselves are `herd.pullcmd` and `herd.benchcmd`)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from herd.cli_flags import EnvFlags
from herd.config import DEFAULT_ROUTER_PORT


def add_tool_parsers(sub: Any, env: Mapping[str, str]) -> None:
    pull = sub.add_parser(
        "pull",
        help="pull a model onto the fleet",
        description="Pull a model onto the best node, or a named one.",
    )
    pull.add_argument("model", help="model to pull, e.g. llama3.2:3b")
    pull.add_argument("--node", default=None, help="node to pull onto (default: most free memory, then disk)")
    _router_flags(pull, env)
    bench = sub.add_parser(
        "bench",
        help="benchmark the fleet",
        description="Run the fixed benchmark prompt set on nodes x models (default: every loaded model on every "
        "node), alone and N at once, and print time to first token, prompt and generation speed.",
    )
    bench.add_argument(
        "--node", action="append", default=None, help="node to run on; repeatable (default: all)"
    )
    bench.add_argument(
        "--model", action="append", default=None, help="model to run; repeatable (default: the loaded ones)"
    )
    bench.add_argument(
        "--parallel", type=int, default=None, help="requests at once in the second pass (default 4)"
    )
    _router_flags(bench, env)


def _router_flags(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """`herd pull` and `herd bench` talk to a router: which one, and its admin key."""
    flags = EnvFlags(parser, env)
    flags.add("--admin-key", "FLEET_ADMIN_KEY", help="the router's admin key, when it has one")
    flags.add(
        "--router-url",
        "FLEET_ROUTER_URL",
        default=f"http://127.0.0.1:{DEFAULT_ROUTER_PORT}",
        help="the router",
    )

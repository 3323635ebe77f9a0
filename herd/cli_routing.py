"""`herd run`'s fleet-lifecycle and routing-judgement flags (heartbeat timing, thinking budgets, fair-share app
weights, conversation affinity) and the config they make; split from `herd.cli`, which calls `add_flags` and
`apply`. The environment arrives as an explicit mapping; nothing here reads `os.environ`."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from herd.cli_flags import EnvFlags
from herd.config import FleetConfig, RouterConfig


def add_flags(run: Any, env: Mapping[str, str]) -> None:
    flags = EnvFlags(run, env)
    flags.add(
        "--heartbeat-interval",
        "FLEET_HEARTBEAT_INTERVAL",
        type=float,
        default=5.0,
        help="seconds between node heartbeats the router expects (sent to agents in its answer, and the "
        "Retry-After of a 503)",
    )
    flags.add(
        "--degraded-after",
        "FLEET_DEGRADED_TIMEOUT",
        type=float,
        default=15.0,
        help="seconds without a heartbeat before a node is degraded",
    )
    flags.add(
        "--offline-after",
        "FLEET_OFFLINE_TIMEOUT",
        type=float,
        default=30.0,
        help="seconds without a heartbeat before a node is offline",
    )
    flags.add(
        "--thinking-overhead",
        "FLEET_THINKING_OVERHEAD",
        type=float,
        default=4.0,
        help="num_predict multiplier for thinking models",
    )
    flags.add(
        "--thinking-min-predict",
        "FLEET_THINKING_MIN_PREDICT",
        type=int,
        default=1024,
        help="least num_predict a thinking model gets",
    )
    run.add_argument(
        "--app-weight",
        action="append",
        default=None,
        metavar="NAME=W",
        help="relative share of the holding queue for an app (its tag, API key name or client address); "
        "repeatable; others weigh 1 (env FLEET_APP_WEIGHTS, comma-separated)",
    )
    flags.switch(
        "--no-affinity", "FLEET_AFFINITY", help="do not prefer the node holding a conversation's prompt cache"
    )


def app_weights(flags: Sequence[str] | None, env: Mapping[str, str]) -> tuple[tuple[str, float], ...]:
    """`NAME=W` pairs from the flags, else from FLEET_APP_WEIGHTS; a bad pair is a usage error."""
    raw = list(flags) if flags else [p for p in env.get("FLEET_APP_WEIGHTS", "").split(",") if p.strip()]
    out: dict[str, float] = {}
    for pair in raw:
        name, sep, weight = pair.strip().rpartition("=")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not sep or not name or not value > 0:
            raise SystemExit(f"herd run: --app-weight wants NAME=W with W > 0, got {pair!r}")
        out[name] = value
    return tuple(out.items())


def apply(cfg: RouterConfig, args: argparse.Namespace, env: Mapping[str, str]) -> RouterConfig:
    """`cfg` with these flags applied."""
    interval = max(0.1, args.heartbeat_interval)
    degraded = max(interval, args.degraded_after)
    fleet = FleetConfig(
        heartbeat_interval=interval,
        degraded_after=degraded,
        offline_after=max(degraded, args.offline_after),
        sweep_interval=cfg.fleet.sweep_interval,
    )
    routing = dataclasses.replace(
        cfg.routing,
        thinking_multiplier=max(1.0, args.thinking_overhead),
        thinking_min_predict=max(0, args.thinking_min_predict),
        app_weights=app_weights(args.app_weight, env),
        affinity=not args.no_affinity,
    )
    return dataclasses.replace(cfg, fleet=fleet, routing=routing)


def alias_spec(raw: str) -> str:
    from herd.routing.aliases import parse_one

    try:
        parse_one(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return raw


def aliases(flags: list[str] | None, env: Mapping[str, str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    from herd.routing.aliases import parse

    specs = flags if flags else [env.get("FLEET_ALIASES", "")]
    try:
        return tuple(parse(specs).items())
    except ValueError as exc:
        raise SystemExit(f"herd run: FLEET_ALIASES: {exc}") from exc


def keep_alive(raw: str | None) -> str | int | None:
    """Ollama takes a duration string ("30m") or a number of seconds (-1 = forever)."""
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return raw

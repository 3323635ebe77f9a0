"""Command line: argv + environment → one frozen config → a composition root in `herd.nursery`.

This is the only module that reads the environment.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from herd import __version__, cli_routing
from herd.cli_node import add_node_parser, interfaces, node_config
from herd.cli_security import add_security_flags, security_config
from herd.cli_trust import TOKEN_FILE, TrustSetupError, add_trust_flags, print_join_hint, trust_config
from herd.config import (
    DEFAULT_OLLAMA_URL,
    DEFAULT_ROUTER_PORT,
    FleetConfig,
    RouterConfig,
    RoutingConfig,
    UpstreamConfig,
)


def _env_flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herd",
        description="One OpenAI- and Ollama-compatible endpoint in front of a fleet of LLM servers.",
    )
    parser.add_argument("--version", action="version", version=f"herd {__version__}")
    parser.add_argument(
        "--log-level",
        default=env.get("FLEET_LOG_LEVEL", "warning"),
        choices=["debug", "info", "warning", "error"],
        help="console log level (env FLEET_LOG_LEVEL; default warning: quiet). JSON logs at info level go to "
        "<data-dir>/logs/herd.log, rotated daily",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,node,pull,bench}")

    run = sub.add_parser("run", help="start the router", description="Start the herd router.")
    run.add_argument(
        "--host",
        default=env.get("FLEET_HOST", "0.0.0.0"),
        help="address to listen on (env FLEET_HOST; default 0.0.0.0)",
    )
    run.add_argument(
        "--port",
        type=int,
        default=int(env.get("FLEET_PORT", DEFAULT_ROUTER_PORT)),
        help=f"port to listen on (env FLEET_PORT; default {DEFAULT_ROUTER_PORT}; 0 picks a free one)",
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env.get("FLEET_DATA_DIR", "~/.herd")),
        help="where the router keeps its state (env FLEET_DATA_DIR; default ~/.herd)",
    )
    run.add_argument(
        "--no-local-node",
        action="store_true",
        default=not _env_flag(env, "FLEET_LOCAL_NODE", True),
        help="do not serve the Ollama on this machine as a node (env FLEET_LOCAL_NODE=0)",
    )
    run.add_argument(
        "--local-ollama-url",
        default=env.get("FLEET_NODE_OLLAMA_HOST", DEFAULT_OLLAMA_URL),
        help=f"the local Ollama served as a node when it answers (env FLEET_NODE_OLLAMA_HOST; "
        f"default {DEFAULT_OLLAMA_URL})",
    )
    run.add_argument(
        "--no-mdns",
        action="store_true",
        default=not _env_flag(env, "FLEET_MDNS", True),
        help="do not advertise the router over mDNS (env FLEET_MDNS=0)",
    )
    run.add_argument(
        "--mdns-interface",
        action="append",
        default=None,
        metavar="IP",
        help="IPv4 address to advertise on; repeatable (env FLEET_MDNS_INTERFACES, comma-separated; "
        "default: every non-loopback IPv4 address)",
    )
    run.add_argument(
        "--max-retries",
        type=int,
        default=int(env.get("FLEET_MAX_RETRIES", 2)),
        help="other nodes to try when one fails before its first byte (env FLEET_MAX_RETRIES; default 2)",
    )
    run.add_argument(
        "--graceful-timeout",
        type=float,
        default=float(env.get("FLEET_GRACEFUL_TIMEOUT", 5.0)),
        help="seconds in-flight responses get to finish on shutdown (env FLEET_GRACEFUL_TIMEOUT; default 5)",
    )

    run.add_argument(
        "--queue-timeout",
        type=float,
        default=float(env.get("FLEET_QUEUE_TIMEOUT", 30.0)),
        help="seconds a request may wait for a free slot before a 429 (env FLEET_QUEUE_TIMEOUT; default 30)",
    )
    run.add_argument(
        "--default-parallel",
        type=int,
        default=int(env.get("FLEET_DEFAULT_PARALLEL", 4)),
        help="requests per model a node runs at once when its agent does not say (env FLEET_DEFAULT_PARALLEL; "
        "default 4)",
    )
    run.add_argument(
        "--vram-fallback",
        action="store_true",
        default=_env_flag(env, "FLEET_VRAM_FALLBACK", False),
        help="serve a hot model of the same family instead of cold-loading the requested one; always shown in "
        "X-Herd-Fallback, never for X-Herd-Strict requests (env FLEET_VRAM_FALLBACK=1; default off)",
    )
    run.add_argument(
        "--dynamic-context",
        action="store_true",
        default=_env_flag(env, "FLEET_DYNAMIC_CONTEXT", False),
        help="size num_ctx per model from observed prompt lengths, never below the model's default or the "
        "request's own (env FLEET_DYNAMIC_CONTEXT=1; default off)",
    )
    run.add_argument(
        "--keep-alive",
        default=env.get("FLEET_KEEP_ALIVE"),
        help="keep_alive added to requests that set none, e.g. 30m or -1 (env FLEET_KEEP_ALIVE; default: "
        "Ollama's own)",
    )

    run.add_argument(
        "--stream-idle-timeout",
        type=float,
        default=float(env.get("FLEET_STREAM_IDLE_TIMEOUT", 300.0)),
        help="seconds a backend may stay silent mid-stream before the stream is cut and recorded "
        "(env FLEET_STREAM_IDLE_TIMEOUT; default 300)",
    )
    run.add_argument(
        "--first-byte-timeout",
        type=float,
        default=float(env.get("FLEET_FIRST_BYTE_TIMEOUT", 300.0)),
        help="seconds to wait for a node's first byte, model load included, before trying another node "
        "(env FLEET_FIRST_BYTE_TIMEOUT; default 300)",
    )

    run.add_argument(
        "--retention-days",
        type=float,
        default=float(env.get("FLEET_RETENTION_DAYS", 30)),
        help="days of request traces kept in <data-dir>/traces.db (env FLEET_RETENTION_DAYS; default 30)",
    )
    add_trust_flags(run, env, router=True)

    add_security_flags(run, env)

    run.add_argument(
        "--alias",
        action="append",
        default=None,
        type=_alias_spec,
        metavar="NAME=MODEL[,FALLBACK...]",
        help="serve requests for NAME with MODEL (then each FALLBACK); repeatable, also a runtime setting "
        "(env FLEET_ALIASES, entries separated by ';' or spaces)",
    )
    cli_routing.add_flags(run, env)

    run.add_argument(
        "--forget-after",
        type=float,
        default=float(env.get("FLEET_FORGET_AFTER", 24 * 3600)),
        help="seconds after which a node that stopped heartbeating is forgotten (env FLEET_FORGET_AFTER; "
        "default 86400)",
    )
    run.add_argument(
        "--heartbeat-max-bytes",
        type=int,
        default=int(env.get("FLEET_HEARTBEAT_MAX_BYTES", 1024 * 1024)),
        help="largest heartbeat body accepted, larger ones get 413 (env FLEET_HEARTBEAT_MAX_BYTES; "
        "default 1048576)",
    )

    run.add_argument(
        "--header-timeout",
        type=float,
        default=float(env.get("FLEET_HEADER_TIMEOUT", 5.0)),
        help="seconds a client has to send a complete request head (env FLEET_HEADER_TIMEOUT; default 5)",
    )
    run.add_argument(
        "--max-connections",
        type=int,
        default=int(env.get("FLEET_MAX_CONNECTIONS", 0)),
        help="open client connections at most, beyond which idle ones are closed first (env "
        "FLEET_MAX_CONNECTIONS; default 0: derived from the open-files limit)",
    )

    add_node_parser(sub, env)
    pull = sub.add_parser(
        "pull",
        help="pull a model onto the fleet",
        description="Pull a model onto the best node, or a named one.",
    )
    pull.add_argument("model", help="model to pull, e.g. llama3.2:3b")
    pull.add_argument("--node", default=None, help="node to pull onto (default: most free memory, then disk)")
    pull.add_argument(
        "--admin-key",
        default=env.get("FLEET_ADMIN_KEY"),
        help="the router's admin key, when it has one (env FLEET_ADMIN_KEY)",
    )
    pull.add_argument(
        "--router-url",
        default=env.get("FLEET_ROUTER_URL", f"http://127.0.0.1:{DEFAULT_ROUTER_PORT}"),
        help=f"the router (env FLEET_ROUTER_URL; default http://127.0.0.1:{DEFAULT_ROUTER_PORT})",
    )
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
    bench.add_argument(
        "--admin-key",
        default=env.get("FLEET_ADMIN_KEY"),
        help="the router's admin key, when it has one (env FLEET_ADMIN_KEY)",
    )
    bench.add_argument(
        "--router-url",
        default=env.get("FLEET_ROUTER_URL", f"http://127.0.0.1:{DEFAULT_ROUTER_PORT}"),
        help=f"the router (env FLEET_ROUTER_URL; default http://127.0.0.1:{DEFAULT_ROUTER_PORT})",
    )
    return parser


def _alias_spec(raw: str) -> str:
    from herd.routing.aliases import parse_one

    try:
        parse_one(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return raw


def _aliases(flags: list[str] | None, env: Mapping[str, str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    from herd.routing.aliases import parse

    specs = flags if flags else [env.get("FLEET_ALIASES", "")]
    try:
        return tuple(parse(specs).items())
    except ValueError as exc:
        raise SystemExit(f"herd run: FLEET_ALIASES: {exc}") from exc


def _keep_alive(raw: str | None) -> str | int | None:
    """Ollama takes a duration string ("30m") or a number of seconds (-1 = forever)."""
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


def router_config(args: argparse.Namespace, env: Mapping[str, str]) -> RouterConfig:
    trust, created = trust_config(args, args.data_dir.expanduser(), router=True)
    if created:
        print_join_hint(args.host, args.port, trust, args.data_dir.expanduser() / TOKEN_FILE)
    cfg = RouterConfig(
        trust=trust,
        data_dir=args.data_dir.expanduser(),
        host=args.host,
        port=args.port,
        local_node=not args.no_local_node,
        local_ollama_url=args.local_ollama_url.rstrip("/"),
        local_node_id=socket.gethostname(),
        mdns=not args.no_mdns,
        mdns_interfaces=interfaces(args.mdns_interface, env),
        max_retries=max(0, args.max_retries),
        graceful_timeout=max(0.0, args.graceful_timeout),
        retention_days=max(0.01, args.retention_days),
        max_body_bytes=args.max_body,
        security=security_config(args, env),
        header_timeout=max(0.5, args.header_timeout),
        max_connections=max(0, args.max_connections),
        upstream=UpstreamConfig(
            idle_timeout=max(1.0, args.stream_idle_timeout),
            first_byte_timeout=max(1.0, args.first_byte_timeout),
        ),
        fleet=FleetConfig(
            forget_after=max(60.0, args.forget_after),
            heartbeat_max_bytes=max(64 * 1024, args.heartbeat_max_bytes),
        ),
        routing=RoutingConfig(
            queue_timeout=max(0.0, args.queue_timeout),
            default_parallel=max(1, args.default_parallel),
            vram_fallback=args.vram_fallback,
            keep_alive=_keep_alive(args.keep_alive),
            dynamic_context=args.dynamic_context,
            aliases=_aliases(args.alias, env),
        ),
    )
    return cli_routing.apply(cfg, args, env)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = build_parser(env).parse_args(argv)
    from herd.logsetup import setup as setup_logging

    data_dir = getattr(args, "data_dir", None)
    listener = setup_logging(args.log_level, data_dir.expanduser() / "logs" if data_dir is not None else None)
    try:
        return _dispatch(args, env)
    except TrustSetupError as exc:
        print(f"herd {args.command}: {exc}", file=sys.stderr)
        return 2
    finally:
        listener.stop()


def _dispatch(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    import trio

    if args.command == "pull":
        from herd.pullcmd import pull

        return pull(args.router_url, args.model, args.node, admin_key=args.admin_key)
    if args.command == "bench":
        from herd.benchcmd import bench

        return bench(args.router_url, args.node, args.model, args.parallel, admin_key=args.admin_key)
    if args.command == "run":
        from herd.guard.keyfile import KeysFileError
        from herd.nursery.router import main_router

        cfg = router_config(args, env)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        failed: list[BaseException] = []
        bad_keys: tuple[BaseException, ...] = ()
        try:
            trio.run(main_router, cfg)
        except* OSError as group:  # typically: the port is taken
            failed.extend(group.exceptions)
        except* KeysFileError as group:
            bad_keys = group.exceptions
        if bad_keys:  # the API keys file is unreadable or has a bad line (named in the message)
            bad = bad_keys[0]
            while isinstance(bad, BaseExceptionGroup):
                bad = bad.exceptions[0]
            print(f"herd run: {bad}", file=sys.stderr)
            return 2
        if failed:
            leaf = failed[0]
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            print(f"herd run: cannot serve on {cfg.host}:{cfg.port}: {leaf}", file=sys.stderr)
            return 2
        return 0
    from herd.nursery.node import run_node

    ncfg = node_config(args, env)
    if args.print_probes:
        from herd.nursery.node import print_probes

        return trio.run(print_probes, ncfg)
    ncfg.data_dir.mkdir(parents=True, exist_ok=True)
    trio.run(run_node, ncfg)
    return 0

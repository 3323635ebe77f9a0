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
from herd.cli_flags import EnvFlags
from herd.cli_node import add_node_parser, interfaces, node_config
from herd.cli_security import add_security_flags, security_config
from herd.cli_tools import add_tool_parsers
from herd.cli_trust import TOKEN_FILE, TrustSetupError, add_trust_flags, print_join_hint, trust_config
from herd.config import (
    DEFAULT_OLLAMA_URL,
    DEFAULT_ROUTER_PORT,
    FleetConfig,
    RouterConfig,
    RoutingConfig,
    UpstreamConfig,
)


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
    flags = EnvFlags(run, env)
    flags.add("--host", "FLEET_HOST", default="0.0.0.0", help="address to listen on")
    flags.add(
        "--port",
        "FLEET_PORT",
        type=int,
        default=DEFAULT_ROUTER_PORT,
        note=f"default {DEFAULT_ROUTER_PORT}; 0 picks a free one",
        help="port to listen on",
    )
    flags.add(
        "--data-dir", "FLEET_DATA_DIR", type=Path, default="~/.herd", help="where the router keeps its state"
    )
    flags.switch(
        "--no-local-node", "FLEET_LOCAL_NODE", help="do not serve the Ollama on this machine as a node"
    )
    flags.add(
        "--local-ollama-url",
        "FLEET_NODE_OLLAMA_HOST",
        default=DEFAULT_OLLAMA_URL,
        help="the local Ollama served as a node when it answers",
    )
    flags.switch("--no-mdns", "FLEET_MDNS", help="do not advertise the router over mDNS")
    run.add_argument(
        "--mdns-interface",
        action="append",
        default=None,
        metavar="IP",
        help="IPv4 address to advertise on; repeatable (env FLEET_MDNS_INTERFACES, comma-separated; "
        "default: every non-loopback IPv4 address)",
    )
    flags.add(
        "--max-retries",
        "FLEET_MAX_RETRIES",
        type=int,
        default=2,
        help="other nodes to try when one fails before its first byte",
    )
    flags.add(
        "--graceful-timeout",
        "FLEET_GRACEFUL_TIMEOUT",
        type=float,
        default=5.0,
        help="seconds in-flight responses get to finish on shutdown",
    )

    flags.add(
        "--queue-timeout",
        "FLEET_QUEUE_TIMEOUT",
        type=float,
        default=30.0,
        help="seconds a request may wait for a free slot before a 429",
    )
    flags.add(
        "--default-parallel",
        "FLEET_DEFAULT_PARALLEL",
        type=int,
        default=4,
        help="requests per model a node runs at once when its agent does not say",
    )
    flags.switch(
        "--vram-fallback",
        "FLEET_VRAM_FALLBACK",
        help="serve a hot model of the same family instead of cold-loading the requested one; always shown in "
        "X-Herd-Fallback, never for X-Herd-Strict requests",
    )
    flags.switch(
        "--dynamic-context",
        "FLEET_DYNAMIC_CONTEXT",
        help="size num_ctx per model from observed prompt lengths, never below the model's default or the "
        "request's own",
    )
    flags.add(
        "--keep-alive",
        "FLEET_KEEP_ALIVE",
        note="default: Ollama's own",
        help="keep_alive added to requests that set none, e.g. 30m or -1",
    )

    flags.add(
        "--stream-idle-timeout",
        "FLEET_STREAM_IDLE_TIMEOUT",
        type=float,
        default=300.0,
        help="seconds a backend may stay silent mid-stream before the stream is cut and recorded",
    )
    flags.add(
        "--first-byte-timeout",
        "FLEET_FIRST_BYTE_TIMEOUT",
        type=float,
        default=300.0,
        help="seconds to wait for a node's first byte, model load included, before trying another node",
    )

    flags.add(
        "--retention-days",
        "FLEET_RETENTION_DAYS",
        type=float,
        default=30,
        help="days of request traces kept in <data-dir>/traces.db",
    )
    add_trust_flags(run, env, router=True)

    add_security_flags(run, env)

    run.add_argument(
        "--alias",
        action="append",
        default=None,
        type=cli_routing.alias_spec,
        metavar="NAME=MODEL[,FALLBACK...]",
        help="serve requests for NAME with MODEL (then each FALLBACK); repeatable, also a runtime setting "
        "(env FLEET_ALIASES, entries separated by ';' or spaces)",
    )
    cli_routing.add_flags(run, env)

    flags.add(
        "--forget-after",
        "FLEET_FORGET_AFTER",
        type=float,
        default=24 * 3600,
        help="seconds after which a node that stopped heartbeating is forgotten",
    )
    flags.add(
        "--heartbeat-max-bytes",
        "FLEET_HEARTBEAT_MAX_BYTES",
        type=int,
        default=1024 * 1024,
        help="largest heartbeat body accepted, larger ones get 413",
    )

    flags.add(
        "--header-timeout",
        "FLEET_HEADER_TIMEOUT",
        type=float,
        default=5.0,
        help="seconds a client has to send a complete request head",
    )
    flags.add(
        "--max-connections",
        "FLEET_MAX_CONNECTIONS",
        type=int,
        default=0,
        note="default 0: derived from the open-files limit",
        help="open client connections at most, beyond which idle ones are closed first",
    )

    add_node_parser(sub, env)
    add_tool_parsers(sub, env)
    return parser


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
            keep_alive=cli_routing.keep_alive(args.keep_alive),
            dynamic_context=args.dynamic_context,
            aliases=cli_routing.aliases(args.alias, env),
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
        from herd.nursery.main import main_router

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

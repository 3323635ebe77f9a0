"""`herd node`'s flags and the `NodeConfig` they make (split from `herd.cli`, which dispatches). The
environment arrives as an explicit mapping; nothing here reads `os.environ`."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from herd.cli_flags import EnvFlags, env_bool
from herd.cli_lanproxy import add_lan_proxy_flags, with_lan_proxy
from herd.cli_trust import add_trust_flags, trust_config
from herd.config import DEFAULT_OLLAMA_URL, MediaConfig, NodeConfig
from herd.fleet.heartbeat import BACKENDS


def add_node_parser(sub: Any, env: Mapping[str, str]) -> None:
    node = sub.add_parser(
        "node",
        help="start a node agent beside a backend",
        description="Run the herd node agent beside an Ollama or OpenAI-compatible server.",
    )
    flags = EnvFlags(node, env)
    flags.add(
        "--router-url", "FLEET_NODE_ROUTER_URL", note="default: found over mDNS", help="router to report to"
    )
    flags.add(
        "--backend",
        "FLEET_NODE_BACKEND",
        choices=BACKENDS,
        default="ollama",
        help="what the backend speaks: ollama, or openai for OpenAI-compatible servers such as llama.cpp's "
        "llama-server, vLLM, LM Studio",
    )
    node.add_argument(
        "--backend-url",
        "--ollama-url",
        dest="ollama_url",
        default=env.get("FLEET_NODE_BACKEND_URL") or env.get("FLEET_NODE_OLLAMA_HOST", DEFAULT_OLLAMA_URL),
        help="the backend this agent serves (env FLEET_NODE_BACKEND_URL or FLEET_NODE_OLLAMA_HOST; default "
        f"{DEFAULT_OLLAMA_URL})",
    )
    node.add_argument(
        "--node-id",
        default=env.get("FLEET_NODE_ID") or socket.gethostname(),
        help="this node's name in the fleet (env FLEET_NODE_ID; default the host name)",
    )
    flags.add(
        "--data-dir",
        "FLEET_NODE_DATA_DIR",
        type=Path,
        default="~/.herd-node",
        help="the agent's state directory, one per agent",
    )
    flags.add(
        "--advertise-url",
        "FLEET_NODE_ADVERTISE_URL",
        note="default: --ollama-url with a loopback host replaced by this machine's address",
        help="backend URL as the router should reach it",
    )
    for kind, label in (("image", "image generation"), ("stt", "speech-to-text")):
        up = kind.upper()
        flags.add(
            f"--{kind}-url",
            f"FLEET_NODE_{up}_URL",
            help=f"an OpenAI-compatible {label} server this node offers",
        )
        flags.add(
            f"--{kind}-command",
            f"FLEET_NODE_{up}_COMMAND",
            note="placeholders in docs/api.md",
            help=f"a local {label} command this node offers, run per request",
        )
        flags.add(
            f"--{kind}-model",
            f"FLEET_NODE_{up}_MODEL",
            note="default: the server's /v1/models, or local-image / local-stt for a command",
            help=f"the model name to report for {label}",
        )
    flags.add(
        "--service-port",
        "FLEET_NODE_SERVICE_PORT",
        type=int,
        default=11436,
        help="port of the agent's own server for media commands",
    )
    flags.add(
        "--heartbeat-interval",
        "FLEET_NODE_HEARTBEAT_INTERVAL",
        type=float,
        default=5.0,
        help="seconds between heartbeats",
    )
    node.add_argument(
        "--parallel",
        type=int,
        default=int(env.get("OLLAMA_NUM_PARALLEL", "0") or 0),
        help="requests per model the backend runs at once (env OLLAMA_NUM_PARALLEL; default: the router's "
        "default of 4)",
    )
    node.add_argument(
        "--mdns-interface",
        action="append",
        default=None,
        metavar="IP",
        help="IPv4 address to browse for the router on; repeatable (env FLEET_MDNS_INTERFACES)",
    )
    add_trust_flags(node, env, router=False)
    add_guest_flags(node, env)
    add_lan_proxy_flags(node, env)


def add_guest_flags(node: Any, env: Mapping[str, str]) -> None:
    """The good-guest flags: owner activity, meeting pause, the capacity learner (herd.node.probes)."""
    EnvFlags(node, env).switch(
        "--meeting-pause",
        "FLEET_MEETING_PAUSE",
        help="take no new work while a camera or microphone is in use here; only that yes/no leaves the "
        "machine",
    )
    node.add_argument(
        "--busy-app",
        action="append",
        default=None,
        metavar="NAME",
        help="a heavy app (process name) whose running lowers the memory herd counts on; repeatable (env "
        "FLEET_BUSY_APPS, comma-separated)",
    )
    node.add_argument(
        "--capacity-learning",
        action=argparse.BooleanOptionalAction,
        default=env_bool(env, "FLEET_CAPACITY_LEARNING", True),
        help="learn when the owner usually uses this machine (168 hourly slots, in the data dir) and send it "
        "to the router (env FLEET_CAPACITY_LEARNING=0 turns it off; default on)",
    )
    node.add_argument(
        "--print-probes",
        action="store_true",
        help="print what this machine reports (GPU, thermal, battery, owner load) as JSON and exit",
    )


def busy_apps(flag: Sequence[str] | None, env: Mapping[str, str]) -> tuple[str, ...]:
    raw = list(flag) if flag else env.get("FLEET_BUSY_APPS", "").split(",")
    return tuple(dict.fromkeys(x.strip() for x in raw if x.strip()))


def interfaces(flag: Sequence[str] | None, env: Mapping[str, str]) -> tuple[str, ...]:
    if flag:
        return tuple(flag)
    raw = env.get("FLEET_MDNS_INTERFACES", "")
    return tuple(x.strip() for x in raw.split(",") if x.strip())


def node_config(args: argparse.Namespace, env: Mapping[str, str]) -> NodeConfig:
    trust, _ = trust_config(args, args.data_dir.expanduser(), router=False)
    cfg = NodeConfig(
        trust=trust,
        node_id=args.node_id,
        data_dir=args.data_dir.expanduser(),
        ollama_url=args.ollama_url.rstrip("/"),
        router_url=args.router_url.rstrip("/") if args.router_url else None,
        advertise_url=args.advertise_url,
        mdns_interfaces=interfaces(args.mdns_interface, env),
        parallel=max(0, args.parallel),
        backend=args.backend,
        heartbeat_interval=max(0.1, args.heartbeat_interval),
        media=MediaConfig(
            image_url=args.image_url.rstrip("/") if args.image_url else None,
            image_command=args.image_command,
            image_model=args.image_model,
            stt_url=args.stt_url.rstrip("/") if args.stt_url else None,
            stt_command=args.stt_command,
            stt_model=args.stt_model,
            service_port=args.service_port,
        ),
        busy_apps=busy_apps(args.busy_app, env),
        meeting_pause=args.meeting_pause,
        capacity_learning=args.capacity_learning,
    )
    return with_lan_proxy(args, cfg)

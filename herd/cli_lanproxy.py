"""`herd node`'s LAN-proxy flags (`--lan-proxy`, `--lan-proxy-port`) and how they set `NodeConfig`, called from
`herd.cli_node`. The decision itself is `herd.node.lanpolicy.decide`; `--lan-proxy on` without a fleet token
is a `TrustSetupError` (exit 2, the message says why). The environment arrives as an explicit mapping."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from herd.cli_flags import EnvFlags
from herd.cli_trust import TrustSetupError
from herd.config import NodeConfig
from herd.node.lanpolicy import DEFAULT_PORT, LanProxyRefused, decide, parse_mode

log = logging.getLogger("herd.node")


def add_lan_proxy_flags(parser: Any, env: Mapping[str, str]) -> None:
    flags = EnvFlags(parser, env)
    flags.add(
        "--lan-proxy",
        "FLEET_LAN_PROXY",
        nargs="?",
        const="on",
        default="off",
        metavar="on|off|auto",
        help="serve a backend that listens on loopback only to the router through this agent's own port, for "
        "requests signed with the fleet token only (needs --fleet-token); auto: on when the backend URL is "
        "loopback, no --advertise-url is given and a token is set",
    )
    flags.add(
        "--lan-proxy-port",
        "FLEET_LAN_PROXY_PORT",
        type=int,
        default=DEFAULT_PORT,
        help="port of the LAN proxy on all interfaces",
    )


def with_lan_proxy(args: argparse.Namespace, cfg: NodeConfig) -> NodeConfig:
    """`cfg` with the LAN proxy decided; raises `TrustSetupError` when it was asked for but cannot run."""
    try:
        decision = decide(
            parse_mode(args.lan_proxy), cfg.ollama_url, cfg.advertise_url, cfg.trust.token is not None
        )
    except LanProxyRefused as exc:
        raise TrustSetupError(str(exc)) from exc
    if parse_mode(args.lan_proxy) == "auto":
        log.log(logging.WARNING if decision.warn else logging.INFO, "%s", decision.why)
    return dataclasses.replace(cfg, lan_proxy=decision.enabled, lan_proxy_port=args.lan_proxy_port)

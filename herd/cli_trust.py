"""The fleet-token, fleet-id and TLS flags shared by `herd run` and `herd node`, and the `TrustConfig` they make
(called from `herd.cli` and `herd.cli_node`). `--fleet-token auto` (router only) creates a random token once in
`<data-dir>/fleet-token` (mode 0600) and re-uses it; `herd run` then prints the `herd node` command that joins.
The environment arrives as an explicit mapping; nothing here reads `os.environ`."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from herd.cli_flags import EnvFlags
from herd.config import Secret, TrustConfig
from herd.fleet.signing import DEFAULT_FLEET_ID, fleet_id

TOKEN_FILE = "fleet-token"
MIN_TOKEN = 16


class TrustSetupError(Exception):
    """A fleet-token or TLS setting that cannot work; the message says why."""


def add_trust_flags(parser: Any, env: Mapping[str, str], *, router: bool) -> None:
    auto = ", or 'auto': create one in <data-dir>/fleet-token and print the join command" if router else ""
    flags = EnvFlags(parser, env)
    flags.add(
        "--fleet-token",
        "FLEET_TOKEN",
        note="default none",
        help=f"shared secret signing heartbeats and agent commands{auto}",
    )
    parser.add_argument(
        "--fleet-token-file",
        type=Path,
        default=Path(env["FLEET_TOKEN_FILE"]) if env.get("FLEET_TOKEN_FILE") else None,
        help="read the fleet token from this file (env FLEET_TOKEN_FILE)",
    )
    flags.add(
        "--fleet-id",
        "FLEET_ID",
        note=f"default: derived from the fleet token, else {DEFAULT_FLEET_ID}",
        help=f"fleet name {'advertised' if router else 'looked for'} over mDNS",
    )
    if router:
        flags.add(
            "--certfile",
            "FLEET_CERTFILE",
            note="needs --keyfile",
            help="serve HTTPS with this PEM certificate",
        )
        flags.add("--keyfile", "FLEET_KEYFILE", help="the certificate's PEM private key")
    else:
        flags.add(
            "--ca-file",
            "FLEET_CA_FILE",
            help="trust this CA or self-signed certificate for an https:// router",
        )


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """The token in `path`, or a new random one written there with mode 0600; (token, created)."""
    try:
        return read_token(path), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token, True


def read_token(path: Path) -> str:
    token = path.expanduser().read_text().strip()
    if not token:
        raise TrustSetupError(f"the fleet token file {path} is empty")
    return token


def trust_config(args: argparse.Namespace, data_dir: Path, *, router: bool) -> tuple[TrustConfig, bool]:
    """The trust settings from parsed flags; the bool says a token was just created (`auto`)."""
    token: str | None = args.fleet_token
    created = False
    if token == "auto":
        if not router:
            raise TrustSetupError("--fleet-token auto is for herd run; give the agent the router's token")
        token, created = load_or_create_token(data_dir / TOKEN_FILE)
    elif token is None and args.fleet_token_file is not None:
        try:
            token = read_token(args.fleet_token_file)
        except OSError as exc:
            raise TrustSetupError(f"cannot read the fleet token file: {exc}") from exc
    if token is not None and len(token) < MIN_TOKEN:
        raise TrustSetupError(f"the fleet token must have at least {MIN_TOKEN} characters")
    certfile, keyfile = getattr(args, "certfile", None), getattr(args, "keyfile", None)
    if bool(certfile) != bool(keyfile):
        raise TrustSetupError("--certfile and --keyfile go together")
    ident = args.fleet_id or (fleet_id(token) if token else DEFAULT_FLEET_ID)
    cfg = TrustConfig(
        fleet_token=Secret(token) if token else None,
        fleet_id=ident,
        certfile=certfile,
        keyfile=keyfile,
        ca_file=getattr(args, "ca_file", None),
    )
    return cfg, created


def join_command(router_url: str, trust: TrustConfig) -> str:
    """The `herd node` command that joins this router (token included)."""
    parts = ["herd node", f"--router-url {router_url}"]
    if trust.token:
        parts.append(f"--fleet-token {trust.token}")
    if trust.certfile:
        parts.append(f"--ca-file <a copy of {trust.certfile}>")
    return " ".join(parts)


def print_join_hint(host: str, port: int, trust: TrustConfig, token_path: Path) -> None:
    """Tell the operator (stderr, shown at every log level) how agents join a fleet with a new token."""
    if host in ("0.0.0.0", "::", ""):
        from herd.fleet.discovery import default_interfaces

        host = default_interfaces()[0]
    url = f"{trust.scheme}://{f'[{host}]' if ':' in host else host}:{port or '<port>'}"
    print(
        f"herd run: created a fleet token in {token_path} (mode 0600). Join agents with:\n"
        f"  {join_command(url, trust)}",
        file=sys.stderr,
        flush=True,
    )

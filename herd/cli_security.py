"""`herd run`'s security flags and the `SecurityConfig` they make (split from `herd.cli`): browser origins, the
body limit, API keys and the admin key. The environment arrives as an explicit mapping; a secret file named by a
flag is read here, once, so the rest of herd only ever sees a `Secret`."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Mapping
from pathlib import Path

from herd.cli_flags import EnvFlags
from herd.config import SecurityConfig
from herd.guard.keys import ApiKey, Secret, keys_checked, parse_key_arg
from herd.guard.origins import parse_origins

UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20}
UNITS |= {"g": 2**30, "gb": 2**30, "gib": 2**30}
DEFAULT_MAX_BODY = "100MiB"


def parse_size(raw: str) -> int:
    """`104857600`, `100M`, `100MiB`, `1G` → bytes (binary units)."""
    text = raw.strip().lower()
    digits = text.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
    unit = text[len(digits) :].strip()
    if not digits.isdigit() or unit not in UNITS or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"not a size: '{raw}' (bytes, or with K/M/G, e.g. 100M)")
    return int(digits) * UNITS[unit]


def add_security_flags(run: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    run.add_argument(
        "--origins",
        action="append",
        default=None,
        metavar="LIST",
        help="browser origins allowed besides Ollama's defaults (localhost, 127.0.0.1, 0.0.0.0 on any port; "
        "app://, file://, tauri://, vscode-webview://): comma-separated patterns, * for all; repeatable "
        "(env FLEET_ORIGINS, and OLLAMA_ORIGINS)",
    )
    run.add_argument(
        "--max-body",
        type=parse_size,
        default=env.get("FLEET_MAX_BODY", DEFAULT_MAX_BODY),
        metavar="SIZE",
        help="largest request body; bigger ones get 413 unread (env FLEET_MAX_BODY; default 100MiB)",
    )
    run.add_argument(
        "--api-key",
        action="append",
        default=None,
        metavar="NAME=KEY",
        help="an API key callers must send (Authorization: Bearer or x-api-key); its name is their app; "
        "repeatable (env FLEET_API_KEYS, comma-separated). Any key makes every API route need one",
    )
    flags = EnvFlags(run, env)
    flags.add(
        "--api-keys-file",
        "FLEET_API_KEYS_FILE",
        type=Path,
        metavar="PATH",
        help="API keys, one 'name key [rpm=N] [concurrent=N]' a line, re-read on SIGHUP",
    )
    flags.add(
        "--admin-key",
        "FLEET_ADMIN_KEY",
        metavar="KEY",
        note="default: none, fleet changes are then refused from other sites' pages",
        help="key that fleet changes (pause, settings, pull, delete, copy) and the dashboard need",
    )
    flags.add(
        "--admin-key-file",
        "FLEET_ADMIN_KEY_FILE",
        type=Path,
        metavar="PATH",
        help="read the admin key from this file",
    )


def _fail(message: str) -> SystemExit:
    return SystemExit(f"herd run: {message}")


def _api_keys(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[ApiKey, ...]:
    raw = args.api_key if args.api_key else [x for x in env.get("FLEET_API_KEYS", "").split(",") if x.strip()]
    try:
        return keys_checked(parse_key_arg(item) for item in raw)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _admin_key(args: argparse.Namespace) -> Secret | None:
    value = args.admin_key
    if args.admin_key_file is not None:
        try:
            value = args.admin_key_file.expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise _fail(f"cannot read the admin key file: {exc}") from None
    if value is None:
        return None
    if not value.strip():
        raise _fail("the admin key is empty")
    return Secret(value.strip())


def security_config(args: argparse.Namespace, env: Mapping[str, str]) -> SecurityConfig:
    origins = [*parse_origins(env.get("OLLAMA_ORIGINS")), *parse_origins(env.get("FLEET_ORIGINS"))]
    for flag in args.origins or ():
        origins += parse_origins(flag)
    return SecurityConfig(
        origins=tuple(dict.fromkeys(origins)),
        api_keys=_api_keys(args, env),
        api_keys_file=args.api_keys_file.expanduser() if args.api_keys_file else None,
        admin_key=_admin_key(args),
        hostname=socket.gethostname(),
    )

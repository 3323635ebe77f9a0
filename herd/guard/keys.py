"""API keys for callers and the admin key: the keys file format, parsing, and constant-time matching.

The keys file (`--api-keys-file`, re-read on SIGHUP), one key per line, `#` starts a comment:

    # name   key                       limits (optional)
    webui    sk-4f9c0e7d2b1a8e6f       rpm=120 concurrent=4
    batch    sk-c0ffee1234567890

A key's name is the app its requests are recorded under (traces, analytics); `rpm` caps requests per minute
(sliding window) and `concurrent` the requests it may have running at once. `--api-key name=key` adds keys on
the command line. A presented key (`Authorization: Bearer ...`, or `x-api-key` as Anthropic clients send it)
is compared with every key, in constant time, as SHA-256 digests, so neither which key nor how long it is leaks;
keys are held in `Secret`, which never shows its value in a repr, a log line or `/fleet/settings`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_NAME_LEN = 100


class Secret:
    """A secret string: `value` for the code that checks it, `<redacted>` for everything that prints it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "'<redacted>'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(_digest(self.value), _digest(other.value))

    def __hash__(self) -> int:
        return hash(_digest(self.value))

    def matches(self, presented: str | None) -> bool:
        """Constant-time comparison with what a caller presented."""
        return hmac.compare_digest(_digest(self.value), _digest(presented or ""))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    key: Secret
    rpm: int | None = None
    concurrent: int | None = None


def _limit(token: str, where: str) -> tuple[str, int]:
    name, _, raw = token.partition("=")
    if name not in ("rpm", "concurrent") or not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{where}: expected rpm=N or concurrent=N (N ≥ 1) after the key, got '{token[:30]}'")
    return name, int(raw)


def _check_name(name: str, where: str) -> None:
    if not name or len(name) > MAX_NAME_LEN or not name.isprintable() or "," in name:
        raise ValueError(
            f"{where}: a key's name must be 1-{MAX_NAME_LEN} printable characters without commas"
        )


def parse_keys_file(text: str) -> tuple[ApiKey, ...]:
    """Every key in a keys file; a ValueError names the bad line (never the key on it)."""
    keys: list[ApiKey] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        where = f"line {number}"
        if len(fields) < 2:
            raise ValueError(f"{where}: expected 'name key [rpm=N] [concurrent=N]'")
        _check_name(fields[0], where)
        limits = dict(_limit(token, where) for token in fields[2:])
        keys.append(ApiKey(fields[0], Secret(fields[1]), limits.get("rpm"), limits.get("concurrent")))
    return keys_checked(keys)


def parse_key_arg(raw: str) -> ApiKey:
    """`--api-key name=key` (and each entry of FLEET_API_KEYS)."""
    name, sep, key = raw.strip().partition("=")
    if not sep or not key.strip():
        raise ValueError("an API key is given as name=key")
    _check_name(name.strip(), "--api-key")
    return ApiKey(name.strip(), Secret(key.strip()))


def keys_checked(keys: Iterable[ApiKey]) -> tuple[ApiKey, ...]:
    out = tuple(keys)
    digests = [_digest(k.key.value) for k in out]
    if len(set(digests)) != len(digests):
        raise ValueError("the same key is given twice (under one or two names)")
    return out


@dataclass(frozen=True, slots=True)
class Keyring:
    """The keys in force (immutable; a reload builds a new one)."""

    keys: tuple[ApiKey, ...] = ()
    digests: tuple[bytes, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digests", tuple(_digest(k.key.value) for k in self.keys))

    def __bool__(self) -> bool:
        return bool(self.keys)

    def match(self, presented: str | None) -> ApiKey | None:
        """The key presented, compared with every key (no early exit) in constant time."""
        if presented is None:
            return None
        wanted = _digest(presented)
        found: ApiKey | None = None
        for key, digest in zip(self.keys, self.digests, strict=True):
            if hmac.compare_digest(wanted, digest):
                found = key
        return found


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a caller sent: `Authorization: Bearer <key>` (OpenAI, Ollama clients) or `x-api-key`
    (Anthropic clients)."""
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None


def auth_message_key(raw: str | bytes) -> str | None:
    """The key in the dashboard WebSocket's first message, `{"type": "auth", "key": "..."}`."""
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("type") == "auth" and isinstance(message.get("key"), str):
        return str(message["key"])
    return None

"""Browser origins and Host names, the way Ollama lets them in (`envconfig.AllowedOrigins`, gin-contrib/cors
and `allowedHostsMiddleware` in Ollama's server), so that what works against a bare Ollama works against herd.

- Origins allowed by default: `http(s)://localhost`, `127.0.0.1` and `0.0.0.0` on any port, and the desktop
  app schemes `app://`, `file://`, `tauri://`, `vscode-webview://`. `--origins` / `FLEET_ORIGINS` /
  `OLLAMA_ORIGINS` add patterns: `*` alone allows every origin, otherwise each `*` matches any run of
  characters (`https://*.example.com`, `chrome-extension://*`). A page on the router's own origin (the
  dashboard) is always allowed.
- Host names (DNS-rebinding defence, only when the router listens on loopback): IP literals that are loopback,
  private or unspecified, `localhost`, the machine's own host name and names under `.localhost`, `.local`,
  `.internal`.

Pure: `herd.web.guard` calls these for every request.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0")
APP_ORIGINS = ("app://*", "file://*", "tauri://*", "vscode-webview://*")
LOCAL_SUFFIXES = (".localhost", ".local", ".internal")

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
# Request headers a cross-origin page may send (Ollama's list plus what the Anthropic client and herd use);
# requested headers with one of the prefixes below are allowed too, so new X-Herd-* headers need no change here.
ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "User-Agent",
    "Accept",
    "X-Requested-With",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "OpenAI-Organization",
    "OpenAI-Project",
    "X-Herd-Tags",
    "X-Herd-Strict",
    "X-Herd-Admin-Key",
)
ALLOW_HEADER_PREFIXES = ("x-herd-", "x-stainless-", "anthropic-")
# Response headers a cross-origin page may read.
EXPOSE_HEADERS = (
    "X-Herd-Node",
    "X-Herd-Model",
    "X-Herd-Score",
    "X-Herd-Candidates",
    "X-Herd-Fallback",
    "X-Thinking-Tokens",
    "X-Output-Tokens",
    "X-Budget-Used",
    "X-Done-Reason",
    "Retry-After",
)
PREFLIGHT_MAX_AGE = "43200"  # 12 h, gin-contrib/cors' default


def default_origins() -> tuple[str, ...]:
    out: list[str] = []
    for host in DEFAULT_HOSTS:
        out += [f"http://{host}", f"https://{host}", f"http://{host}:*", f"https://{host}:*"]
    return (*out, *APP_ORIGINS)


def parse_origins(raw: str | None) -> tuple[str, ...]:
    """A comma-separated list as OLLAMA_ORIGINS takes it (quotes and spaces around entries are ignored)."""
    if not raw:
        return ()
    return tuple(p for p in (part.strip().strip("\"'").strip() for part in raw.split(",")) if p)


def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")), re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """Ollama's defaults plus `extra` patterns."""

    extra: tuple[str, ...] = ()
    allow_all: bool = field(init=False)
    patterns: tuple[re.Pattern[str], ...] = field(init=False)

    def __post_init__(self) -> None:
        globs = (*default_origins(), *self.extra)
        object.__setattr__(self, "allow_all", "*" in globs)
        object.__setattr__(self, "patterns", tuple(_pattern(g) for g in globs if g != "*"))

    def allows(self, origin: str) -> bool:
        return self.allow_all or any(p.fullmatch(origin) for p in self.patterns)


def same_origin(origin: str, host: str | None) -> bool:
    """The page was served by this router (the dashboard): its origin is the Host it asked for. Either scheme,
    as gin-contrib/cors does, so a router behind a TLS-terminating proxy still knows its own pages."""
    if not host:
        return False
    origin = origin.lower()
    host = host.lower()
    return origin in (f"http://{host}", f"https://{host}")


def host_name(host: str) -> str:
    """The name part of a Host header: `[::1]:80` → `::1`, `example:11435` → `example`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def is_loopback_bind(bind_host: str) -> bool:
    """The router listens only on loopback, where DNS rebinding is the way in."""
    if bind_host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind_host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_host(host: str | None, own_names: Iterable[str] = ()) -> bool:
    """Ollama's `allowedHost` + the IP-literal test of `allowedHostsMiddleware`."""
    name = host_name(host or "")
    if name in ("", "localhost") or name in {n.lower() for n in own_names if n}:
        return True
    return _local_name(name)


@lru_cache(maxsize=256)  # asked on every request of a loopback router, mostly with the same one or two names
def _local_name(name: str) -> bool:
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return name.endswith(LOCAL_SUFFIXES)
    return ip.is_loopback or ip.is_private or ip.is_unspecified


def preflight_headers(origin: str, requested: str | None) -> list[tuple[str, str]]:
    """The answer to an allowed origin's `OPTIONS` preflight."""
    allowed = {h.lower() for h in ALLOW_HEADERS}
    names = list(ALLOW_HEADERS)
    for raw in (requested or "").split(","):
        name = raw.strip()
        if name and name.lower() not in allowed and name.lower().startswith(ALLOW_HEADER_PREFIXES):
            allowed.add(name.lower())
            names.append(name)
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Methods", ALLOW_METHODS),
        ("Access-Control-Allow-Headers", ", ".join(names)),
        ("Access-Control-Max-Age", PREFLIGHT_MAX_AGE),
        ("Vary", "Origin"),
    ]


def response_headers(origin: str) -> list[tuple[str, str]]:
    """Added to every response for an allowed cross-origin page."""
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Expose-Headers", ", ".join(EXPOSE_HEADERS)),
        ("Vary", "Origin"),
    ]

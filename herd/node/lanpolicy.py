"""The LAN proxy's decisions, pure: when `herd node` serves its backend through its own port
(`herd.node.lanproxy`), and which requests the proxy relays at all. `herd.cli_node` decides at startup; the
proxy asks `refusal` for every request after its signature headers passed.

`--lan-proxy` takes `on`, `off` or `auto`:

- `on` needs a fleet token: the proxy puts a backend that chose to listen on loopback only onto the LAN, so only
  requests signed with the token may pass. Without one the agent refuses to start (`LanProxyRefused`, exit 2).
- `auto` turns it on when the backend URL is a loopback address, no `--advertise-url` names another way to reach
  the backend, and a token is set; otherwise it stays off and says why.
- `off` (the default) advertises the backend URL as before.

Only the backend's API is relayed: `/api/*` (Ollama), `/v1/*` (OpenAI-compatible), `/health`, `/props` and
`/slots` (llama.cpp), with GET, HEAD, POST or DELETE; dot segments (`..`, also percent-encoded) are refused.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MODES = ("off", "on", "auto")
ON_WORDS = frozenset({"on", "1", "true", "yes"})
OFF_WORDS = frozenset({"off", "0", "false", "no", ""})
PREFIXES = ("/api/", "/v1/")
EXACT = frozenset({"/health", "/props", "/slots"})
METHODS = frozenset({"GET", "HEAD", "POST", "DELETE"})
DEFAULT_PORT = 11437


class LanProxyRefused(Exception):
    """`--lan-proxy on` cannot work as configured; the message says why."""


@dataclass(frozen=True, slots=True)
class Decision:
    enabled: bool
    why: str
    # The operator should hear about it: auto found a loopback backend but could not open it safely.
    warn: bool = False


def parse_mode(text: str | None) -> str:
    """`on`, `off` or `auto` from a flag or environment value (also 1/0, true/false, yes/no)."""
    word = (text or "").strip().lower()
    if word in ON_WORDS:
        return "on"
    if word in OFF_WORDS:
        return "off"
    if word == "auto":
        return "auto"
    raise LanProxyRefused(f"--lan-proxy must be on, off or auto, not {text!r}")


def is_loopback_url(url: str) -> bool:
    """The URL's host is a loopback name or address (`0.0.0.0` is every interface, not loopback)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def decide(mode: str, backend_url: str, advertise_url: str | None, has_token: bool) -> Decision:
    """Whether the agent runs the LAN proxy. Raises `LanProxyRefused` for `on` without a fleet token."""
    if mode == "off":
        return Decision(False, "--lan-proxy is off")
    if mode == "on":
        if not has_token:
            raise LanProxyRefused(
                "--lan-proxy needs the fleet token (--fleet-token or --fleet-token-file, the same as the "
                "router's): it opens the loopback-only backend to the LAN, and only requests signed with the "
                "token may pass. Without a token the agent will not serve the backend to the network"
            )
        return Decision(True, "--lan-proxy is on")
    if advertise_url:
        return Decision(False, "--lan-proxy auto: off, --advertise-url names the backend's address")
    if not is_loopback_url(backend_url):
        return Decision(False, f"--lan-proxy auto: off, the backend {backend_url} is not on loopback")
    if not has_token:
        return Decision(
            False,
            f"--lan-proxy auto: off although the backend {backend_url} is on loopback, because no fleet token "
            "is set; the proxy only runs with one (--fleet-token)",
            warn=True,
        )
    return Decision(True, f"--lan-proxy auto: on, the backend {backend_url} is on loopback")


def refusal(method: str, path: str) -> tuple[int, str] | None:
    """Why the proxy will not relay `method path` (status, message), or None. `path` is the raw request path
    without the query."""
    decoded = unquote(path)
    segments = decoded.split("/")
    if not path.startswith("/") or any(s in (".", "..") for s in segments) or "\\" in decoded:
        return 400, f"the LAN proxy relays plain paths only, not {path[:100]!r}"
    if not (path.startswith(PREFIXES) or path in EXACT):
        return 404, (
            f"the LAN proxy relays only the backend's API (/api/*, /v1/*, /health, /props, /slots), "
            f"not {path[:100]!r}"
        )
    if method.upper() not in METHODS:
        return 405, f"the LAN proxy relays GET, HEAD, POST and DELETE, not {method[:20]}"
    return None

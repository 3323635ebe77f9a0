"""Typed, frozen configuration: built once in `herd.cli` from argv and the environment, then passed down.

Nothing else in herd reads `os.environ`; every component receives the slice of config it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from herd.guard.keys import ApiKey, Secret

DEFAULT_ROUTER_PORT = 11435
DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
SERVICE_TYPE = "_herd._tcp.local."


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """How the router talks to backends (one shared HTTP client per process)."""

    connect_timeout: float = 5.0
    # Time allowed from sending a request to its first body byte (model loads can take a while).
    first_byte_timeout: float = 300.0
    # Longest silence tolerated between two chunks of a running stream.
    idle_timeout: float = 300.0
    # Longest a whole image generation or transcription may take on one node.
    media_timeout: float = 900.0
    max_connections: int = 512
    max_keepalive: int = 64


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """Heartbeat-driven node lifecycle."""

    heartbeat_interval: float = 5.0
    degraded_after: float = 15.0
    offline_after: float = 30.0
    # How often the expiry task re-evaluates node states.
    sweep_interval: float = 1.0
    # A node silent this long is forgotten (dropped from the fleet, its series and listings with it).
    forget_after: float = 24 * 3600.0
    # Largest heartbeat body accepted (413 beyond).
    heartbeat_max_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """Capacity, queueing and resilience knobs."""

    # Parallel requests per model a node takes when its agent does not say (Ollama's OLLAMA_NUM_PARALLEL).
    default_parallel: int = 4
    # How long a request may wait in the holding queue for a free slot, and how many may wait per model.
    queue_timeout: float = 30.0
    queue_max_depth: int = 512
    # A node that answers 503 "server busy" is treated as full for this long.
    busy_backoff: float = 2.0
    # Circuit breaker: consecutive connection failures that open it, and seconds before a probe.
    breaker_threshold: int = 3
    breaker_cooldown: float = 15.0
    # The rebalancer re-scores waiting requests this often even when nothing else changes.
    rebalance_interval: float = 5.0
    # Model policies (see herd/routing/policies.py).
    vram_fallback: bool = False
    thinking_multiplier: float = 4.0
    thinking_min_predict: int = 1024
    keep_alive: str | int | None = None
    # Size num_ctx per model from observed prompt lengths (herd.routing.dyncontext); off by default.
    dynamic_context: bool = False
    # Model aliases: name -> models tried in order (see herd/routing/aliases.py); the runtime setting starts here.
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()

    # Fair share (herd/routing/fairshare.py): relative shares of the holding queue per app, e.g. (("batch", 0.5),).
    app_weights: tuple[tuple[str, float], ...] = ()
    # Conversation affinity (herd/routing/affinity.py): remember which node holds a chat's prompt cache.
    affinity: bool = True


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """The web edge's guard (`herd.web.guard`): who may call the router. Secrets are `Secret`s, shown redacted."""

    # Browser origins allowed besides Ollama's defaults (patterns, `*` for all).
    origins: tuple[str, ...] = ()
    # API keys for callers; when any exist (here or in the file), API routes need one.
    api_keys: tuple[ApiKey, ...] = ()
    api_keys_file: Path | None = None
    # When set, fleet changes and the dashboard's data need it.
    admin_key: Secret | None = None
    # This machine's host name, accepted as Host when listening on loopback.
    hostname: str = ""


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """Everything `herd run` needs."""

    data_dir: Path
    host: str = "0.0.0.0"
    port: int = DEFAULT_ROUTER_PORT
    local_node: bool = True
    local_ollama_url: str = DEFAULT_OLLAMA_URL
    local_node_id: str = "local"
    mdns: bool = True
    # IPv4 addresses to advertise on; empty means every non-loopback IPv4 address of this host.
    mdns_interfaces: tuple[str, ...] = ()
    max_retries: int = 2
    graceful_timeout: float = 5.0
    max_body_bytes: int = 100 * 1024 * 1024
    body_timeout: float = 120.0
    access_log: bool = False
    # Longest a request waits for an auto-pull (runtime toggle) before it is answered as usual.
    auto_pull_timeout: float = 900.0
    # Trace rows older than this are deleted (hourly).
    retention_days: float = 30.0
    # Seconds a client has to send a complete request head (keep-alive pauses between requests get 75 s).
    header_timeout: float = 5.0
    # Open client connections at most; 0 derives it from the open-files limit (see herd/web/server.py).
    max_connections: int = 0
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    trust: TrustConfig = field(default_factory=lambda: TrustConfig())
    security: SecurityConfig = field(default_factory=SecurityConfig)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything `herd node` needs."""

    node_id: str
    data_dir: Path
    ollama_url: str = DEFAULT_OLLAMA_URL
    # None: find the router over mDNS.
    router_url: str | None = None
    # The backend URL as the router should reach it; None derives it from ollama_url and the route to the router.
    advertise_url: str | None = None
    heartbeat_interval: float = 5.0
    backoff_max: float = 30.0
    probe_timeout: float = 3.0
    mdns_interfaces: tuple[str, ...] = ()
    # Requests per model the backend runs at once (Ollama's OLLAMA_NUM_PARALLEL); 0 lets the router decide.
    parallel: int = 0
    # What the backend speaks: "ollama", or "openai" (llama.cpp's llama-server, vLLM, LM Studio).
    backend: str = "ollama"
    # Media backends this node serves besides its main backend (see herd.node.media).
    media: MediaConfig = field(default_factory=lambda: MediaConfig())
    trust: TrustConfig = field(default_factory=lambda: TrustConfig())
    # Good guest (herd.node.probes, herd.node.capacity): heavy apps that lower the memory ceiling, pause while
    # a camera or microphone is in use, learn the owner's week.
    busy_apps: tuple[str, ...] = ()
    meeting_pause: bool = False
    capacity_learning: bool = True
    # Serve a loopback-only backend to the router through the agent's own port, for fleet-token signed
    # requests only (herd.node.lanproxy); decided from --lan-proxy on/off/auto by herd.node.lanpolicy.
    lan_proxy: bool = False
    lan_proxy_host: str = "0.0.0.0"
    lan_proxy_port: int = 11437


@dataclass(frozen=True, slots=True)
class MediaConfig:
    """Image generation and speech-to-text on a node: an OpenAI-compatible server (`*_url`) or a local command
    (`*_command`, run by the agent's own small server on `service_host:service_port`)."""

    image_url: str | None = None
    image_command: str | None = None
    image_model: str | None = None
    stt_url: str | None = None
    stt_command: str | None = None
    stt_model: str | None = None
    service_host: str = "0.0.0.0"
    service_port: int = 11436
    command_timeout: float = 900.0

    @property
    def needs_service(self) -> bool:
        return bool(self.image_command or self.stt_command)

    @property
    def image_name(self) -> str:
        """The model name reported for the image command."""
        return self.image_model or "local-image"

    @property
    def stt_name(self) -> str:
        """The model name reported for the speech-to-text command."""
        return self.stt_model or "local-stt"


@dataclass(frozen=True, slots=True)
class TrustConfig:
    """Fleet token and TLS, for `herd run` and `herd node` alike (see `herd.fleet.signing`)."""

    # Heartbeats and agent commands are signed with it when set (README "Fleet token and TLS").
    fleet_token: Secret | None = None
    # Advertised over mDNS by the router; agents join only a router with theirs (derived from the token).
    fleet_id: str = "herd"
    # Router: serve HTTPS with this certificate and key.
    certfile: str | None = None
    keyfile: str | None = None
    # Agent: trust this CA (or self-signed certificate) for an https:// router.
    ca_file: str | None = None

    @property
    def token(self) -> str | None:
        return self.fleet_token.value if self.fleet_token is not None else None

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"

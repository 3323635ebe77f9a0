"""The heartbeat wire format, shared by the agent (`herd.node`) that sends it and the registry that ingests it.

A heartbeat is a JSON object posted to `POST /heartbeat` on the router. Parsing is pure and strict: a bad
heartbeat is a 400, never a half-filled node. Everything in it is bounded (the MAX_* below; names follow
`herd.validate.model_name`), and so is its body (`FleetConfig.heartbeat_max_bytes`, 413).

    {
      "node_id": "gpu-box-1", "agent_version": "0.1.0", "backend": "ollama",
      "backend_url": "http://10.0.0.5:11434", "backend_up": true, "backend_version": "0.12.3",
      "draining": false, "interval": 5.0,
      "host": {"cpu_percent": 3.5, "cpu_count": 8, "mem_total": 1, "mem_available": 1,
               "disk_free": 1, "load": [0.1, 0.2, 0.3]},
      "models": [ ...entries of Ollama's /api/tags "models", unchanged... ],
      "loaded": [ ...entries of Ollama's /api/ps "models", unchanged... ],
      "parallel": 4,         # optional: requests per model the backend runs at once (0 = unknown)
      "media": [             # optional: image generation and speech-to-text the node can serve
        {"kind": "image", "model": "x/z-image-turbo", "url": "http://10.0.0.5:11434", "api": "ollama"},
        {"kind": "transcription", "model": "whisper-1", "url": "http://10.0.0.5:11436", "api": "openai",
         "max_bytes": 16777216}   # optional: the largest request body it takes (default 16 MiB)
      ],
      "gpu": null, "thermal": null, "on_battery": null, ...  # optional: see herd.fleet.guest
      "signed": true         # optional: backend_url is the agent's LAN proxy, which takes fleet-token
                             # signed requests only (herd.node.lanproxy); the router signs every request to it
    }
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from herd.errors import BadRequest
from herd.fleet.guest import NO_GUEST, GuestState, parse_guest
from herd.validate import model_name, text

# What a node's backend speaks: Ollama's API, or an OpenAI-compatible one (llama.cpp, vLLM, LM Studio).
OLLAMA = "ollama"
OPENAI = "openai"
BACKENDS = (OLLAMA, OPENAI)
# Bounds on what one heartbeat may carry (its body is also capped: `FleetConfig.heartbeat_max_bytes`).
MAX_NODE_ID = 200
MAX_URL = 2048
MAX_VERSION = 128
MAX_ENTRIES = 4096  # models on disk, models loaded
MAX_MEDIA = 64
MAX_PARALLEL = 4096


@dataclass(frozen=True, slots=True)
class HostStats:
    cpu_percent: float = 0.0
    cpu_count: int = 0
    mem_total: int = 0
    mem_available: int = 0
    disk_free: int = 0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    node_id: str
    agent_version: str
    backend: str
    backend_url: str
    backend_up: bool
    backend_version: str | None
    draining: bool
    interval: float
    host: HostStats
    # Raw Ollama entries, kept as they came so merged listings stay field-for-field faithful.
    models: tuple[dict[str, Any], ...]
    loaded: tuple[dict[str, Any], ...]
    # Parallel requests per model the backend serves (Ollama's OLLAMA_NUM_PARALLEL); 0 = unknown.
    parallel: int = 0
    # Media backends: {"kind": "image" | "transcription", "model", "url", "api": "openai" | "ollama"}.
    media: tuple[dict[str, Any], ...] = ()
    # GPU, thermal, battery, owner load, memory ceiling, learned week (herd.fleet.guest); all optional.
    guest: GuestState = NO_GUEST
    # backend_url is the agent's LAN proxy: every request to it must carry the fleet-token signature.
    signed: bool = False

    @property
    def speaks_ollama(self) -> bool:
        """Ollama's own API: herd can pull/delete/copy its models and compare its versions."""
        return self.backend != OPENAI

    @property
    def ollama_version(self) -> str | None:
        """The Ollama version, None for other backends (a llama.cpp build number is not comparable)."""
        return self.backend_version if self.speaks_ollama else None

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "agent_version": self.agent_version,
            "backend": self.backend,
            "backend_url": self.backend_url,
            "backend_up": self.backend_up,
            "backend_version": self.backend_version,
            "draining": self.draining,
            "interval": self.interval,
            "host": {
                "cpu_percent": self.host.cpu_percent,
                "cpu_count": self.host.cpu_count,
                "mem_total": self.host.mem_total,
                "mem_available": self.host.mem_available,
                "disk_free": self.host.disk_free,
                "load": list(self.host.load),
            },
            "models": list(self.models),
            "loaded": list(self.loaded),
            "parallel": self.parallel,
            "media": [dict(m) for m in self.media],
            **self.guest.to_json(),
            "signed": self.signed,
        }


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    value = obj.get(name, default)
    if value is ...:
        raise BadRequest(f"heartbeat: missing field '{name}'", param=name)
    if value is default and default is not ...:
        return value
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise BadRequest(f"heartbeat: field '{name}' must be a number", param=name)
    if not isinstance(value, kind):
        raise BadRequest(f"heartbeat: field '{name}' has the wrong type", param=name)
    return value


def _entries(obj: dict[str, Any], name: str) -> tuple[dict[str, Any], ...]:
    raw = _field(obj, name, list, [])
    if len(raw) > MAX_ENTRIES:
        raise BadRequest(f"heartbeat: at most {MAX_ENTRIES} entries in '{name}'", param=name)
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("name") or entry.get("model"), str):
            raise BadRequest(f"heartbeat: every entry of '{name}' needs a string 'name'", param=name)
        if "name" not in entry:
            entry = {**entry, "name": entry["model"]}
        model_name(entry["name"], f"{name}[{i}].name")
        out.append(entry)
    return tuple(out)


MEDIA_KINDS = ("image", "transcription")
DEFAULT_UPLOAD_LIMIT = 16 * 2**20  # a media entry's `max_bytes` when the agent does not say
MEDIA_APIS = (OPENAI, OLLAMA)


def _media(obj: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    out = []
    entries = _field(obj, "media", list, [])
    if len(entries) > MAX_MEDIA:
        raise BadRequest(f"heartbeat: at most {MAX_MEDIA} 'media' entries", param="media")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BadRequest("heartbeat: every 'media' entry must be an object", param="media")
        kind, model, url, api = (entry.get(k) for k in ("kind", "model", "url", "api"))
        if kind not in MEDIA_KINDS or api not in MEDIA_APIS:
            raise BadRequest(
                f"heartbeat: media 'kind' must be one of {MEDIA_KINDS}, 'api' one of {MEDIA_APIS}"
            )
        if not isinstance(model, str) or not model or not isinstance(url, str):
            raise BadRequest("heartbeat: media entries need a 'model' name and a 'url'", param="media")
        if not url.startswith("http://"):
            raise BadRequest("heartbeat: media 'url' must be an http URL", param="media")
        model_name(model, f"media[{i}].model")
        text(url, f"media[{i}].url", MAX_URL)
        item: dict[str, Any] = {"kind": kind, "model": model, "url": url.rstrip("/"), "api": api}
        limit = entry.get("max_bytes")
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= 2**40:
                raise BadRequest("heartbeat: media 'max_bytes' must be a positive integer", param="media")
            item["max_bytes"] = limit
        out.append(item)
    return tuple(out)


def parse_heartbeat(obj: Any) -> Heartbeat:
    """Validate a decoded heartbeat body. Raises `BadRequest` on anything malformed."""
    if not isinstance(obj, dict):
        raise BadRequest("heartbeat: body must be a JSON object")
    node_id = _field(obj, "node_id", str)
    if not node_id or len(node_id) > MAX_NODE_ID:
        raise BadRequest(f"heartbeat: 'node_id' must be 1-{MAX_NODE_ID} characters", param="node_id")
    text(node_id, "node_id", MAX_NODE_ID)
    backend_url = text(_field(obj, "backend_url", str), "backend_url", MAX_URL)
    if not backend_url.startswith(("http://", "https://")):
        raise BadRequest("heartbeat: 'backend_url' must be an http(s) URL", param="backend_url")
    host_raw = _field(obj, "host", dict, {})
    load = host_raw.get("load", [0.0, 0.0, 0.0])
    if not (isinstance(load, list) and len(load) == 3 and all(isinstance(x, int | float) for x in load)):
        raise BadRequest("heartbeat: 'host.load' must be three numbers", param="host.load")
    host = HostStats(
        cpu_percent=float(_field(host_raw, "cpu_percent", (int, float), 0.0)),
        cpu_count=int(_field(host_raw, "cpu_count", int, 0)),
        mem_total=int(_field(host_raw, "mem_total", int, 0)),
        mem_available=int(_field(host_raw, "mem_available", int, 0)),
        disk_free=int(_field(host_raw, "disk_free", int, 0)),
        load=(float(load[0]), float(load[1]), float(load[2])),
    )
    version = obj.get("backend_version")
    if isinstance(version, str):
        text(version, "backend_version", MAX_VERSION, empty=True)
    backend = _field(obj, "backend", str, OLLAMA)
    if backend not in BACKENDS:
        raise BadRequest(f"heartbeat: 'backend' must be one of {BACKENDS}", param="backend")
    interval = float(_field(obj, "interval", (int, float), 5.0))
    parallel = _field(obj, "parallel", int, 0)
    if parallel > MAX_PARALLEL:
        raise BadRequest(f"heartbeat: 'parallel' must be at most {MAX_PARALLEL}", param="parallel")
    return Heartbeat(
        node_id=node_id,
        agent_version=text(_field(obj, "agent_version", str, "unknown"), "agent_version", MAX_VERSION),
        backend=backend,
        backend_url=backend_url.rstrip("/"),
        backend_up=_field(obj, "backend_up", bool, True),
        backend_version=version if isinstance(version, str) else None,
        draining=_field(obj, "draining", bool, False),
        interval=interval if 0 < interval <= 3600 else 5.0,
        host=host,
        models=_entries(obj, "models"),
        loaded=_entries(obj, "loaded"),
        parallel=max(0, parallel),
        media=_media(obj),
        guest=parse_guest(obj),
        signed=_field(obj, "signed", bool, False),
    )

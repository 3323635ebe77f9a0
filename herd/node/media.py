"""Which media backends a node agent reports (image generation, speech-to-text), once per heartbeat.

`herd.node.agent` calls `MediaScout.scan` with the backend probe it just made. Three sources:
- an Ollama image model (its capabilities list "image"): served through that Ollama (`api: ollama`);
- an OpenAI-compatible server given by `--image-url` / `--stt-url`: reported while its `/v1/models` answers,
  with its model ids (or the `--image-model` / `--stt-model` name);
- a local command (`--image-command` / `--stt-command`): wrapped by the agent's own OpenAI-compatible server
  (`herd.node.commands`), reported at that server's URL.
URLs on loopback are rewritten like the backend URL, so the router can reach them from another machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from herd.config import MediaConfig
from herd.node.collect import BackendProbe
from herd.node.commands import UPLOAD_LIMIT

IMAGE_CAPS = frozenset({"image", "image_generation"})


def ollama_images(probe: BackendProbe, backend_url: str) -> list[dict[str, Any]]:
    out = []
    for entry in probe.models:
        caps = entry.get("capabilities")
        if isinstance(caps, list) and IMAGE_CAPS & set(caps):
            out.append({"kind": "image", "model": str(entry["name"]), "url": backend_url, "api": "ollama"})
    return out


class MediaScout:
    def __init__(
        self,
        cfg: MediaConfig,
        client: httpx.AsyncClient,
        advertise: Callable[[str], str],
        service_url: Callable[[], str | None],
    ) -> None:
        self.cfg = cfg
        self.client = client
        self.advertise = advertise  # a URL on this machine as the router should reach it
        self.service_url = service_url  # the command server's URL once it listens

    async def _server_models(self, url: str, fixed: str | None) -> list[str]:
        """Model ids of an OpenAI-compatible media server, [] while it does not answer."""
        try:
            resp = await self.client.get(url.rstrip("/") + "/v1/models")
        except httpx.HTTPError:
            return []
        if resp.status_code != 200:
            return [fixed] if fixed and resp.status_code == 404 else []  # a server without /v1/models
        if fixed:
            return [fixed]
        try:
            data = resp.json().get("data") or []
        except (ValueError, AttributeError):
            return []
        ids = [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
        return ids or ["default"]

    async def scan(self, probe: BackendProbe, backend_url: str) -> tuple[dict[str, Any], ...]:
        cfg = self.cfg
        found = ollama_images(probe, backend_url) if probe.up else []
        for kind, url, fixed in (
            ("image", cfg.image_url, cfg.image_model),
            ("transcription", cfg.stt_url, cfg.stt_model),
        ):
            if url:
                for model in await self._server_models(url, fixed):
                    found.append({"kind": kind, "model": model, "url": self.advertise(url), "api": "openai"})
        service = self.service_url()
        if service:
            url = self.advertise(service)
            for kind, command, name in (
                ("image", cfg.image_command, cfg.image_name),
                ("transcription", cfg.stt_command, cfg.stt_name),
            ):
                if command:
                    entry = {
                        "kind": kind,
                        "model": name,
                        "url": url,
                        "api": "openai",
                        "max_bytes": UPLOAD_LIMIT,
                    }
                    found.append(entry)
        return tuple(found)

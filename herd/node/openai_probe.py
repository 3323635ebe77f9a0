"""What a node agent reports for an OpenAI-compatible backend (`herd node --backend openai`): llama.cpp's
`llama-server`, vLLM, LM Studio.

`herd.node.agent` calls `OpenAIProber.probe` once per heartbeat instead of the Ollama probe. Models come from
`GET /v1/models` (such servers keep every listed model loaded, so each is reported both on disk and loaded),
health from `GET /health` where present (llama.cpp answers 503 while it loads), and parallelism and context from
llama.cpp's `/props` and `/slots` when the server has them. The entries are shaped like Ollama's `/api/tags` and
`/api/ps` entries so the router treats every node alike (a sleeping llama.cpp reports nothing loaded). Whether a
model embeds is asked once per model with a one-word `/v1/embeddings` call (servers do not say otherwise), within
a one-second budget so a busy server never delays a heartbeat; the answer is kept until the model list changes
or the server goes away.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import trio

from herd.node.collect import BackendProbe

FAR_FUTURE = "2318-01-01T00:00:00Z"  # "loaded until the server stops", in /api/ps's expires_at format


def _iso(ts: Any) -> str:
    if isinstance(ts, int | float) and ts > 0:
        return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    return ""


def _param_size(n: Any) -> str:
    if not isinstance(n, int | float) or n <= 0:
        return ""
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def model_entries(
    models: dict[str, Any],
    props: dict[str, Any] | None,
    slots: list[Any] | None,
    embeds: dict[str, bool],
) -> tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...], int]:
    """Pure: `/v1/models` (+ llama.cpp `/props`, `/slots`) → (tags entries, ps entries, parallel)."""
    props = props or {}
    modalities: dict[str, Any] = props["modalities"] if isinstance(props.get("modalities"), dict) else {}
    settings = props.get("default_generation_settings")
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    if not isinstance(n_ctx, int) and slots and isinstance(slots[0], dict):
        n_ctx = slots[0].get("n_ctx")
    parallel = props.get("total_slots") if isinstance(props.get("total_slots"), int) else len(slots or [])
    extra = {m.get("model") or m.get("name"): m for m in models.get("models") or [] if isinstance(m, dict)}
    tags: list[dict[str, Any]] = []
    loaded: list[dict[str, Any]] = []
    for item in models.get("data") or []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            continue
        mid = item["id"]
        meta: dict[str, Any] = item["meta"] if isinstance(item.get("meta"), dict) else {}
        size = meta.get("size") if isinstance(meta.get("size"), int) else 0
        ctx = n_ctx if isinstance(n_ctx, int) else item.get("max_model_len") or meta.get("n_ctx_train")
        caps = ["completion"]
        if embeds.get(mid):
            caps.append("embedding")
        if modalities.get("vision"):
            caps.append("vision")
        listed = extra.get(mid) or {}
        details = dict(listed.get("details") or {}) if isinstance(listed.get("details"), dict) else {}
        details.setdefault("format", "gguf" if meta else "")
        if not details.get("parameter_size"):
            details["parameter_size"] = _param_size(meta.get("n_params"))
        entry: dict[str, Any] = {
            "name": mid,
            "model": mid,
            "modified_at": _iso(item.get("created")),
            "size": size,
            "digest": "",
            "details": details,
            "capabilities": caps,
        }
        if isinstance(ctx, int):
            entry["context_length"] = ctx
        tags.append(entry)
        if props.get("is_sleeping") is True:
            continue  # llama.cpp unloaded the model while idle: the next request reloads it (cold)
        running = {"name": mid, "model": mid, "size": size, "size_vram": 0, "expires_at": FAR_FUTURE}
        running["details"] = details
        if isinstance(ctx, int):
            running["context_length"] = ctx
        loaded.append(running)
    return tuple(tags), tuple(loaded), parallel if isinstance(parallel, int) else 0


class OpenAIProber:
    """Probes one OpenAI-compatible server; remembers which models embed."""

    def __init__(self, client: httpx.AsyncClient, url: str, embed_budget: float = 1.0) -> None:
        self.client = client
        self.url = url
        self.embed_budget = embed_budget
        self.embeds: dict[str, bool] = {}
        self.parallel = 0

    async def _get(self, path: str) -> tuple[int, Any]:
        try:
            resp = await self.client.get(self.url + path)
        except httpx.HTTPError as exc:
            return 0, f"{type(exc).__name__}: {exc}"
        try:
            return resp.status_code, resp.json()
        except (json.JSONDecodeError, ValueError):
            return resp.status_code, None

    async def _embeds(self, model: str) -> None:
        try:
            resp = await self.client.post(
                self.url + "/v1/embeddings",
                json={"model": model, "input": "ping", "encoding_format": "float"},
            )
        except httpx.HTTPError:
            return  # unknown: asked again next heartbeat
        if resp.status_code != 503:  # 503: still loading, ask again
            self.embeds[model] = resp.status_code == 200

    async def _learn_embeds(self, ids: list[str]) -> None:
        """Ask each model not asked yet whether it embeds, within `embed_budget` seconds: a server busy with
        generations may queue the question, and a heartbeat must not wait for it (unanswered: asked again)."""
        self.embeds = {m: v for m, v in self.embeds.items() if m in ids}
        with trio.move_on_after(self.embed_budget):
            async with trio.open_nursery() as nursery:
                for mid in ids:
                    if mid not in self.embeds:
                        nursery.start_soon(self._embeds, mid)

    async def probe(self) -> BackendProbe:
        answers: dict[str, tuple[int, Any]] = {}

        async def fetch(path: str) -> None:
            answers[path] = await self._get(path)

        async with trio.open_nursery() as nursery:
            for path in ("/v1/models", "/health", "/props", "/slots"):
                nursery.start_soon(fetch, path)
        status, models = answers["/v1/models"]
        health_status, health = answers["/health"]
        if status != 200 or not isinstance(models, dict):
            self.embeds = {}  # a restarted server may have other flags: ask again
            return BackendProbe(up=False, error=f"/v1/models: {models if status == 0 else f'HTTP {status}'}")
        if health_status not in (200, 404):
            detail = health.get("error") if isinstance(health, dict) else health
            return BackendProbe(up=False, error=f"/health: HTTP {health_status} {detail or ''}".strip())
        ids = [
            m["id"] for m in models.get("data") or [] if isinstance(m, dict) and isinstance(m.get("id"), str)
        ]
        await self._learn_embeds(ids)
        props = answers["/props"][1] if answers["/props"][0] == 200 else None
        slots = answers["/slots"][1] if answers["/slots"][0] == 200 else None
        tags, loaded, parallel = model_entries(
            models,
            props if isinstance(props, dict) else None,
            slots if isinstance(slots, list) else None,
            self.embeds,
        )
        self.parallel = parallel
        version = props.get("build_info") if isinstance(props, dict) else None
        return BackendProbe(
            up=True,
            version=str(version) if version else None,
            models=tags,
            loaded=loaded,
            extra={"parallel": parallel},
        )

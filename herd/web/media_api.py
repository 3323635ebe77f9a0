"""Media routes: image generation and speech-to-text, routed to nodes whose agents advertise those backends
(`herd.routing.media`), plus the media catalog. Parsing and answers are in `herd.dialects.media`.

- `POST /v1/images/generations` (OpenAI: `b64_json` or `url`), `POST /api/generate-image` (herd, base64)
- `POST /v1/audio/transcriptions` (OpenAI multipart: json, text, verbose_json, srt, vtt),
  `POST /api/transcribe` (herd: the same multipart, or JSON with base64 `audio`)
- `GET /api/image-models`, `GET /api/transcription-models`; `GET /herd/images/<file>` serves `url` results
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio
from quart import Blueprint, Response, request

from herd.dialects import media as codec
from herd.dialects import ollama as ollama_codec
from herd.dialects.tags import extract_tags
from herd.errors import BadRequest, NotFound
from herd.routing.media import Media, catalog, too_large, upload_limit
from herd.services import RouterServices

JSON = "application/json; charset=utf-8"
KEEP_IMAGES = 24 * 3600.0
IMAGE_NAME = re.compile(r"[0-9a-f]{32}\.png")


def _json(payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), content_type=JSON, headers=headers)


def _save_images(folder: Path, encoded: list[str]) -> list[str]:
    """Write PNGs for `url` answers (worker thread); files older than a day are removed on the way."""
    images = [
        codec.decode_image(data) for data in encoded
    ]  # undecodable: the backend failed, before any write
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - KEEP_IMAGES
    for old in folder.glob("*.png"):
        if old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
    names = []
    for data in images:
        name = f"{uuid.uuid4().hex}.png"
        (folder / name).write_bytes(data)
        names.append(name)
    return names


def blueprint(svc: RouterServices) -> Blueprint:
    bp = Blueprint("media", __name__)
    media = Media(
        lambda: svc.registry.snapshot,
        svc.slots,
        svc.upstream,
        svc.cfg.upstream.media_timeout,
        fleet_token=svc.cfg.trust.token,
        starting=svc.proxy.starting,
    )
    images_dir = svc.cfg.data_dir / "images"

    def record(dialect: str, path: str, model: str | None, tags: tuple[str, ...]) -> Any:
        return svc.recorder.begin(
            request.scope,
            dialect=dialect,
            path=path,
            requested_model=model or "",
            model=model or "",
            stream=False,
            tags=tags,
        )

    def json_job(raw: bytes) -> tuple[dict[str, Any], tuple[str, ...]]:
        """A JSON body without its `metadata`, and the request's tags (body `metadata.tags` + X-Herd-Tags)."""
        body, tags, _ = extract_tags(ollama_codec.parse_body(raw), request.headers.get("X-Herd-Tags"))
        return body, tags

    async def generate(
        job: codec.ImageJob, tags: tuple[str, ...], dialect: str, path: str
    ) -> tuple[list[str], dict[str, str], str]:
        rec = record(dialect, path, job.model, tags)
        images: list[str] = []
        backend = None
        while len(images) < job.n:  # Ollama's image API makes one image per call
            backend, status, data = await media.call(
                "image", job.model, lambda b: codec.image_backend_request(job, b)
            )
            images += codec.images_from(backend, status, data)
        assert backend is not None
        rec.model, rec.node_id, rec.done = backend.model, backend.node.node_id, True
        headers = {"X-Herd-Node": backend.node.node_id, "X-Herd-Model": backend.model}
        return images[: job.n], headers, backend.model

    @bp.post("/v1/images/generations")
    async def images_openai() -> Response:
        raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        body, tags = json_job(raw)
        job = codec.image_job(body, openai=True)
        images, headers, _ = await generate(job, tags, "openai", "/v1/images/generations")
        if job.response_format == "b64_json":
            data = [{"b64_json": img} for img in images]
        else:
            names = await trio.to_thread.run_sync(_save_images, images_dir, images)
            base = request.host_url.rstrip("/")
            data = [{"url": f"{base}/herd/images/{name}"} for name in names]
        return _json({"created": int(time.time()), "data": data}, headers)

    @bp.post("/api/generate-image")
    async def images_herd() -> Response:
        raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        body, tags = json_job(raw)
        job = codec.image_job(body, openai=False)
        started = trio.current_time()
        images, headers, model = await generate(job, tags, "ollama", "/api/generate-image")
        payload = {
            "model": model,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "images": images,
            "done": True,
            "total_duration": int((trio.current_time() - started) * 1e9),
        }
        return _json(payload, headers)

    @bp.get("/herd/images/<name>")
    async def image_file(name: str) -> Response:
        if not IMAGE_NAME.fullmatch(name):  # only names herd made: no NUL, no path, no 5,000-byte names
            raise NotFound("no such image")
        path = images_dir / name
        try:
            data = await trio.to_thread.run_sync(path.read_bytes)
        except OSError as exc:
            raise NotFound("no such image (images are kept for a day)") from exc
        return Response(data, content_type="image/png")

    async def speech_from_request() -> tuple[codec.SpeechJob, tuple[str, ...]]:
        if request.mimetype == "multipart/form-data":
            form = await request.form
            files = await request.files
            upload = files.get("file")
            audio = upload.read() if upload is not None else None
            _, tags, _ = extract_tags({}, request.headers.get("X-Herd-Tags"))
            return codec.speech_job(dict(form.items()), audio, upload.filename if upload else None), tags
        if request.mimetype == "application/json":
            raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
            body, tags = json_job(raw)
            fields = {k: str(v) for k, v in body.items() if k != "audio" and v is not None}
            job = codec.speech_job(
                fields, codec.decode_audio(body.get("audio")), str(body.get("filename") or "")
            )
            return job, tags
        # read the body first: an answer before the whole body is in makes the server drop the connection
        await request.get_data(cache=False, as_text=False, parse_form_data=False)
        raise BadRequest("send multipart/form-data with a 'file' part (or JSON with base64 'audio')")

    async def transcribe(dialect: str, path: str) -> tuple[codec.SpeechJob, Any, dict[str, str]]:
        limit, size = upload_limit(svc.registry.snapshot, "transcription"), request.content_length
        if limit is not None and request.mimetype != "multipart/form-data":
            limit = limit * 4 // 3 + 65536  # JSON carries the audio in base64
        if limit is not None and size is not None and size > limit:
            raise too_large(size, limit, "speech-to-text")  # refused from the headers, the upload unread
        job, tags = await speech_from_request()
        rec = record(dialect, path, job.model, tags)
        backend, status, data = await media.call(
            "transcription", job.model, lambda b: codec.speech_backend_request(job, b)
        )
        result = codec.transcript(status, data, job)
        rec.model, rec.node_id, rec.done = backend.model, backend.node.node_id, True
        return job, result, {"X-Herd-Node": backend.node.node_id, "X-Herd-Model": backend.model}

    @bp.post("/v1/audio/transcriptions")
    async def transcriptions_openai() -> Response:
        job, result, headers = await transcribe("openai", "/v1/audio/transcriptions")
        if isinstance(result, str):
            return Response(result, content_type="text/plain; charset=utf-8", headers=headers)
        if job.response_format == "text":
            return Response(result["text"], content_type="text/plain; charset=utf-8", headers=headers)
        if job.response_format == "json":
            result = {"text": result["text"], **({"usage": result["usage"]} if "usage" in result else {})}
        return _json(result, headers)

    @bp.post("/api/transcribe")
    async def transcribe_herd() -> Response:
        started = trio.current_time()
        _, result, headers = await transcribe("ollama", "/api/transcribe")
        text = result if isinstance(result, str) else result["text"]
        payload: dict[str, Any] = {"model": headers["X-Herd-Model"], "text": text, "done": True}
        if isinstance(result, dict):
            payload |= {k: result[k] for k in ("language", "duration", "segments") if k in result}
        payload["total_duration"] = int((trio.current_time() - started) * 1e9)
        return _json(payload, headers)

    @bp.get("/api/image-models")
    async def image_models() -> Response:
        return _json({"models": catalog(svc.registry.snapshot, "image")})

    @bp.get("/api/transcription-models")
    async def transcription_models() -> Response:
        return _json({"models": catalog(svc.registry.snapshot, "transcription")})

    return bp

"""Image generation and speech-to-text codecs (pure): validate the caller's request, build the request for the
chosen backend (OpenAI-compatible or Ollama), and read the backend's answer back.

`herd.web.media_api` parses with these, `herd.routing.media.Media.call` sends what `*_backend_request` builds.
Callers: OpenAI `POST /v1/images/generations` and `POST /v1/audio/transcriptions` (multipart), herd's own
`POST /api/generate-image` and `POST /api/transcribe` (JSON with base64 audio, or multipart).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from herd.backends.upstream import error_message
from herd.errors import BadRequest, UpstreamFailed, UpstreamStatus
from herd.fleet.heartbeat import OLLAMA
from herd.routing.media import Backend, Request
from herd.validate import model_name, number, text

SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
STT_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
MAX_AUDIO = 100 * 1024 * 1024
MAX_FILENAME = 255
MAX_LANGUAGE = 64
MAX_PROMPT = 64 * 1024


@dataclass(frozen=True, slots=True)
class ImageJob:
    model: str | None
    prompt: str
    n: int
    width: int
    height: int
    steps: int | None
    seed: int | None
    negative_prompt: str | None
    response_format: str  # "b64_json" or "url"


def _int(body: dict[str, Any], name: str, lo: int, hi: int, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadRequest(f"'{name}' must be an integer from {lo} to {hi}", param=name)
    return value


def _model(body: dict[str, Any]) -> str | None:
    model = body.get("model")
    return None if model is None else model_name(model)


def image_job(body: dict[str, Any], *, openai: bool) -> ImageJob:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadRequest("'prompt' is required and must be a non-empty string", param="prompt")
    width = height = 1024
    if openai or "size" in body:
        size = body.get("size", "1024x1024")
        match = SIZE.match(size) if isinstance(size, str) else None
        if size != "auto" and match is None:
            raise BadRequest("'size' must look like 1024x1024", param="size")
        if match:
            width, height = int(match.group(1)), int(match.group(2))
    width = _int(body, "width", 64, 8192, width) or width
    height = _int(body, "height", 64, 8192, height) or height
    fmt = body.get("response_format", "url" if openai else "b64_json")
    if fmt not in ("b64_json", "url"):
        raise BadRequest("'response_format' must be 'b64_json' or 'url'", param="response_format")
    negative = body.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise BadRequest("'negative_prompt' must be a string", param="negative_prompt")
    return ImageJob(
        model=_model(body),
        prompt=prompt,
        n=_int(body, "n", 1, 10, 1) or 1,
        width=width,
        height=height,
        steps=_int(body, "steps", 1, 500, None),
        seed=_int(body, "seed", 0, 2**63 - 1, None),
        negative_prompt=negative,
        response_format=fmt,
    )


def image_backend_request(job: ImageJob, backend: Backend) -> Request:
    if backend.api == OLLAMA:  # Ollama's experimental image generation: /api/generate on an image model
        body: dict[str, Any] = {"model": backend.model, "prompt": job.prompt, "stream": False}
        body |= {"width": job.width, "height": job.height}
        if job.steps is not None:
            body["steps"] = job.steps
        if job.seed is not None:
            body["seed"] = job.seed
        if job.negative_prompt:
            body["negative_prompt"] = job.negative_prompt
        return Request("/api/generate", json.dumps(body).encode())
    body = {
        "model": backend.model,
        "prompt": job.prompt,
        "n": job.n,
        "size": f"{job.width}x{job.height}",
        "response_format": "b64_json",
    }
    for name in ("steps", "seed", "negative_prompt"):
        if getattr(job, name) is not None:
            body[name] = getattr(job, name)
    return Request("/v1/images/generations", json.dumps(body).encode())


def _error(status: int, data: bytes) -> UpstreamStatus | UpstreamFailed:
    """A 4xx is the caller's to fix and passes through; a 5xx is the backend failing (502)."""
    message = error_message(data) if data else f"HTTP {status}"
    if status >= 500:
        return UpstreamFailed(f"media backend failed (HTTP {status}): {message}")
    return UpstreamStatus(status, message)


def images_from(backend: Backend, status: int, data: bytes) -> list[str]:
    """The base64 images in a backend's answer."""
    if status != 200:
        raise _error(status, data)
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise UpstreamFailed(f"image backend on {backend.node.node_id} sent invalid JSON") from exc
    if backend.api == OLLAMA:
        found = obj.get("images") or ([obj["image"]] if obj.get("image") else [])
    else:
        found = [d.get("b64_json") for d in obj.get("data") or [] if isinstance(d, dict)]
    images = [i for i in found if isinstance(i, str) and i]
    if not images:
        raise UpstreamFailed(f"image backend on {backend.node.node_id} returned no image")
    return images


def decode_image(data: str) -> bytes:
    """A backend's base64 image as bytes; undecodable base64 is the backend failing (502)."""
    try:
        return base64.b64decode(data.split(",", 1)[-1] if data.startswith("data:") else data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UpstreamFailed("the image backend sent an image that is not valid base64") from exc


@dataclass(frozen=True, slots=True)
class SpeechJob:
    model: str | None
    audio: bytes
    filename: str
    language: str | None
    prompt: str | None
    temperature: float | None
    response_format: str


def speech_job(fields: dict[str, str], audio: bytes | None, filename: str | None) -> SpeechJob:
    if not audio:
        raise BadRequest("'file' is required: the audio to transcribe", param="file")
    if len(audio) > MAX_AUDIO:
        raise BadRequest(f"'file' is larger than {MAX_AUDIO // (1024 * 1024)} MB", param="file")
    fmt = fields.get("response_format") or "json"
    if fmt not in STT_FORMATS:
        raise BadRequest(
            f"'response_format' must be one of {', '.join(STT_FORMATS)}", param="response_format"
        )
    temperature: float | None = None
    if fields.get("temperature"):
        try:
            temperature = float(fields["temperature"])
        except ValueError as exc:
            raise BadRequest("'temperature' must be a number", param="temperature") from exc
        number(temperature, "temperature", 0.0, 2.0)
    model, language, prompt = (fields.get(k) or None for k in ("model", "language", "prompt"))
    return SpeechJob(
        model=None if model is None else model_name(model),
        audio=audio,
        filename=text(filename or "audio.wav", "file", MAX_FILENAME),
        language=None if language is None else text(language, "language", MAX_LANGUAGE),
        prompt=None if prompt is None else text(prompt, "prompt", MAX_PROMPT, free_text=True),
        temperature=temperature,
        response_format=fmt,
    )


def decode_audio(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        raise BadRequest("'audio' must be base64-encoded audio", param="audio")
    try:
        return base64.b64decode(
            value.split(",", 1)[-1] if value.startswith("data:") else value, validate=True
        )
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("'audio' is not valid base64", param="audio") from exc


def multipart(fields: dict[str, str], file_field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = "herd-" + uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    safe = filename.replace('"', "").replace("\r", "").replace("\n", "")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{safe}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def speech_backend_request(job: SpeechJob, backend: Backend) -> Request:
    fields = {
        "model": backend.model,
        "response_format": "verbose_json" if job.response_format == "verbose_json" else "json",
    }
    if job.response_format in ("srt", "vtt"):
        fields["response_format"] = job.response_format
    for name in ("language", "prompt", "temperature"):
        if getattr(job, name) is not None:
            fields[name] = str(getattr(job, name))
    body, ctype = multipart(fields, "file", job.filename, job.audio)
    return Request("/v1/audio/transcriptions", body, ctype)


def transcript(status: int, data: bytes, job: SpeechJob) -> dict[str, Any] | str:
    """The backend's transcript: a dict (json/verbose_json) or the text of srt/vtt."""
    if status != 200:
        raise _error(status, data)
    if job.response_format in ("srt", "vtt"):
        return data.decode("utf-8", "replace")
    try:
        obj = json.loads(data)
    except ValueError:
        return {"text": data.decode("utf-8", "replace").strip()}  # a server answering plain text
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise UpstreamFailed("transcription backend answered without 'text'")
    return obj

"""Fake media servers for tests: an OpenAI-compatible images + transcriptions server, and an Ollama with an
image-generation model (Ollama's experimental `/api/generate` with width/height returning `image`).

Raw ASGI apps on hypercorn's trio worker (127.0.0.1:0). They record what they were sent so tests can check
what herd forwarded (fields, multipart parts, sizes).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from fake_server import FakeServer, Message, Receive, Send

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


def multipart_fields(body: bytes, content_type: str) -> dict[str, bytes]:
    """A small multipart/form-data reader: part name -> raw value."""
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    out = {}
    for part in body.split(b"--" + boundary):
        head, sep, value = part.partition(b"\r\n\r\n")
        match = re.search(rb'name="([^"]+)"', head)
        if sep and match:
            out[match.group(1).decode()] = value.removesuffix(b"\r\n")
    return out


class _Server(FakeServer):
    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []

    async def handle(self, scope: Message, raw: bytes, receive: Receive, send: Send) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, body, ctype = self.answer(
            scope["method"], scope["path"], raw, headers.get("content-type", "")
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def answer(self, method: str, path: str, raw: bytes, ctype: str) -> tuple[int, bytes, str]:
        raise NotImplementedError


def _json(status: int, obj: Any) -> tuple[int, bytes, str]:
    return status, json.dumps(obj).encode(), "application/json"


class FakeMediaServer(_Server):
    """OpenAI-compatible: `/v1/models`, `/v1/images/generations` (b64_json PNGs), `/v1/audio/transcriptions`."""

    def __init__(self, models: tuple[str, ...] = ("flux-schnell",), transcript: str = "hello world") -> None:
        super().__init__()
        self.models, self.transcript = models, transcript
        self.fail_next: int | None = None

    def answer(self, method: str, path: str, raw: bytes, ctype: str) -> tuple[int, bytes, str]:
        if method == "GET" and path == "/v1/models":
            return _json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]})
        if self.fail_next is not None:
            status, self.fail_next = self.fail_next, None
            return _json(status, {"error": {"message": "backend exploded", "type": "server_error"}})
        if path == "/v1/images/generations":
            req = json.loads(raw)
            self.requests.append((path, req))
            data = [{"b64_json": base64.b64encode(PNG).decode()} for _ in range(req.get("n", 1))]
            return _json(200, {"created": 1, "data": data})
        if path == "/v1/audio/transcriptions":
            fields = multipart_fields(raw, ctype)
            self.requests.append((path, fields))
            fmt = fields.get("response_format", b"json").decode()
            if fmt in ("srt", "vtt"):
                return 200, f"1\n00:00:00,000 --> 00:00:01,000\n{self.transcript}\n".encode(), "text/plain"
            lang = fields.get("language", b"en").decode()
            seconds = len(fields["file"]) / 32000
            body: dict[str, Any] = {"text": self.transcript}
            if fmt == "verbose_json":
                body |= {"task": "transcribe", "language": lang, "duration": seconds, "segments": []}
            return _json(200, body)
        return _json(404, {"error": {"message": "not found"}})


class FakeOllamaImages(_Server):
    """Ollama with one image model: `/api/tags` lists it with the "image" capability; `/api/generate` makes
    one PNG per call."""

    def __init__(self, model: str = "x/z-image-turbo:latest") -> None:
        super().__init__()
        self.model = model

    def answer(self, method: str, path: str, raw: bytes, ctype: str) -> tuple[int, bytes, str]:
        if path == "/api/generate":
            req = json.loads(raw)
            self.requests.append((path, req))
            if req.get("model") != self.model:
                return _json(404, {"error": f"model '{req.get('model')}' not found"})
            return _json(
                200,
                {
                    "model": self.model,
                    "created_at": "2026-11-24T00:00:00Z",
                    "image": base64.b64encode(PNG).decode(),
                    "done": True,
                },
            )
        return _json(404, {"error": "not found"})

"""The node agent's media command server: a small OpenAI-compatible server that runs a local command per
request, so a command-line image generator or transcriber joins the fleet like any media server.

Started by `herd.nursery.node` only when `--image-command` or `--stt-command` is set; its URL is reported in
heartbeats by `herd.node.media`. Commands are argument templates (split like a shell would, never run through
one) with placeholders replaced per request:

- image: `{prompt} {width} {height} {steps} {seed} {negative_prompt} {model} {output}`; the image is read
  from `{output}` (a temporary .png path) when the template has it, else from the command's stdout.
- speech-to-text: `{input} {language} {prompt} {model}`; `{input}` is the uploaded audio in a temporary file;
  the transcript is the command's stdout (plain text, or JSON with a "text" field).

One command of each kind runs at a time (they usually own the machine's GPU or CPU); a failing command is a 500
with the tail of its stderr; a command past its timeout is killed (cancel scope).
"""

from __future__ import annotations

import base64
import json
import logging
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

from herd.config import MediaConfig
from herd.fleet.signing import Verifier
from herd.node.guard import SignedOnly

log = logging.getLogger("herd.node.commands")
JSON = "application/json; charset=utf-8"
UPLOAD_LIMIT = 16 * 2**20  # the largest request body taken; reported in heartbeats (`max_bytes`)


class CommandFailed(Exception):
    pass


def render(template: str, values: dict[str, str]) -> list[str]:
    """The argv for `template` with every `{name}` placeholder replaced (no shell involved)."""
    argv = []
    for arg in shlex.split(template):
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        argv.append(arg)
    return argv


def _error(status: int, message: str) -> Response:
    body = {
        "error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error"}
    }
    return Response(json.dumps(body), status=status, content_type=JSON)


class CommandServer:
    """Service: serves `/v1/models`, `/v1/images/generations`, `/v1/audio/transcriptions` on the given port."""

    def __init__(self, cfg: MediaConfig, fleet_token: str | None = None) -> None:
        self.cfg = cfg
        self.url: str | None = None
        self.app = self._build()
        # With a fleet token only requests the router signed reach a command (herd.node.guard).
        self.served: Any = SignedOnly(self.app, Verifier(fleet_token)) if fleet_token else self.app
        # One run at a time per kind: a local generator or transcriber usually owns the whole GPU/CPU. Further
        # requests wait here while the router holds their slots.
        self.limits = {"image": trio.CapacityLimiter(1), "transcription": trio.CapacityLimiter(1)}

    async def _run(self, kind: str, argv: list[str]) -> bytes:
        async with self.limits[kind]:
            return await self._run_now(argv)

    async def _run_now(self, argv: list[str]) -> bytes:
        with trio.move_on_after(self.cfg.command_timeout) as scope:
            try:
                done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
            except OSError as exc:
                raise CommandFailed(f"cannot run {argv[0]!r}: {exc}") from exc
        if scope.cancelled_caught:
            raise CommandFailed(f"{argv[0]} took longer than {self.cfg.command_timeout:g} s")
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip()[-500:]
            raise CommandFailed(f"{argv[0]} exited with {done.returncode}: {tail}")
        return bytes(done.stdout)

    async def image(self, body: dict[str, Any], tmp: Path) -> str:
        template = self.cfg.image_command or ""
        width, height = (
            (body.get("size") or "1024x1024").split("x", 1)
            if "x" in str(body.get("size"))
            else ("1024", "1024")
        )
        values = {
            "prompt": str(body.get("prompt") or ""),
            "width": width,
            "height": height,
            "steps": str(body.get("steps") or ""),
            "seed": str(body.get("seed") if body.get("seed") is not None else ""),
            "negative_prompt": str(body.get("negative_prompt") or ""),
            "model": str(body.get("model") or ""),
            "output": str(tmp / "image.png"),
        }
        out = await self._run("image", render(template, values))
        if "{output}" in template:
            out = await trio.to_thread.run_sync((tmp / "image.png").read_bytes)
        if not out:
            raise CommandFailed("the image command produced no image")
        return base64.b64encode(out).decode()

    def _build(self) -> QuartTrio:
        app = QuartTrio("herd-node-commands")
        app.config["MAX_CONTENT_LENGTH"] = UPLOAD_LIMIT
        cfg = self.cfg

        @app.before_request
        async def too_large() -> Response | None:
            """An oversized upload is refused from its headers, before a byte of the body is read."""
            size = request.content_length
            if size is not None and size > UPLOAD_LIMIT:
                return _error(
                    413, f"the request body ({size} bytes) exceeds this node's {UPLOAD_LIMIT} bytes"
                )
            return None

        @app.get("/v1/models")
        async def models() -> Response:
            data = []
            if cfg.image_command:
                data.append({"id": cfg.image_name, "object": "model", "owned_by": "herd-node"})
            if cfg.stt_command:
                data.append({"id": cfg.stt_name, "object": "model", "owned_by": "herd-node"})
            return Response(json.dumps({"object": "list", "data": data}), content_type=JSON)

        @app.post("/v1/images/generations")
        async def images() -> Response:
            if not cfg.image_command:
                return _error(404, "no image command on this node")
            try:
                body = json.loads(await request.get_data(cache=False, as_text=False, parse_form_data=False))
            except ValueError:
                return _error(400, "invalid JSON body")
            n = body.get("n") if isinstance(body.get("n"), int) else 1
            try:
                with tempfile.TemporaryDirectory(prefix="herd-image-") as tmp:
                    images = [await self.image(body, Path(tmp)) for _ in range(max(1, min(n, 10)))]
            except CommandFailed as exc:
                log.warning("image command failed: %s", exc)
                return _error(500, str(exc))
            payload = {"created": int(time.time()), "data": [{"b64_json": img} for img in images]}
            return Response(json.dumps(payload), content_type=JSON)

        @app.post("/v1/audio/transcriptions")
        async def transcriptions() -> Response:
            if not cfg.stt_command:
                return _error(404, "no speech-to-text command on this node")
            form = await request.form
            upload = (await request.files).get("file")
            if upload is None:
                return _error(400, "'file' is required")
            fmt = form.get("response_format") or "json"
            if fmt in ("srt", "vtt"):
                return _error(400, "the local command gives plain text; srt and vtt need a server backend")
            suffix = Path(upload.filename or "audio.wav").suffix[:10] or ".wav"
            with tempfile.TemporaryDirectory(prefix="herd-stt-") as tmp:
                audio = Path(tmp) / f"input{suffix}"
                await trio.to_thread.run_sync(audio.write_bytes, upload.read())
                values = {
                    "input": str(audio),
                    "language": form.get("language") or "",
                    "prompt": form.get("prompt") or "",
                    "model": form.get("model") or "",
                }
                try:
                    out = (await self._run("transcription", render(cfg.stt_command or "", values))).decode(
                        "utf-8", "replace"
                    )
                except CommandFailed as exc:
                    log.warning("speech-to-text command failed: %s", exc)
                    return _error(500, str(exc))
            result: dict[str, Any]
            try:
                parsed = json.loads(out)
                result = (
                    parsed
                    if isinstance(parsed, dict) and isinstance(parsed.get("text"), str)
                    else {"text": out.strip()}
                )
            except ValueError:
                result = {"text": out.strip()}
            if fmt == "text":
                return Response(result["text"], content_type="text/plain; charset=utf-8")
            if fmt == "verbose_json":
                result = {
                    "task": "transcribe",
                    **({"language": values["language"]} if values["language"] else {}),
                    **result,
                }
            return Response(json.dumps(result), content_type=JSON)

        return app

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        config = Config()
        config.bind = [f"{self.cfg.service_host}:{self.cfg.service_port}"]
        config.loglevel = "WARNING"
        config.accesslog = None
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, self.served, config)
            self.url = binds[0].replace("0.0.0.0", "127.0.0.1")
            log.info("media command server on %s", self.url)
            task_status.started(self.url)

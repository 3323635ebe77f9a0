"""A fake Ollama node for tests and benchmarks: the far end of the router's request flow.

A raw ASGI app served by hypercorn's trio worker on 127.0.0.1:0. It answers `/`, `/api/version|tags|
ps|show|chat|generate|embed|embeddings` field for field like Ollama 0.12 (the pure wire format is in
bench/ollama_wire.py). Replies are canned words, one NDJSON chunk per word; knobs inject failures and
counters show what the router did upstream. Importable without pytest (bench/fake_node.py runs it).
Known deviation: chat with empty `messages` answers normally (Ollama would only load the model,
done_reason "load"); generate with an empty prompt behaves like Ollama ("load"; "unload" if keep_alive 0).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import trio

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # the repo root, for `bench`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fake_server import FakeServer, Message, Receive, Send

from bench.ollama_wire import (
    ApiError,
    Body,
    FakeModel,
    capability_error,
    decode,
    dumps,
    embed_body,
    final_body,
    keep_alive_seconds,
    merge,
    norm,
    plan_reply,
    ps_entry,
    rfc3339,
    show_body,
    tag_entry,
)

__all__ = ["ApiError", "FakeModel", "FakeOllama", "keep_alive_seconds", "rfc3339"]

JSON_CT = b"application/json; charset=utf-8"
ROUTES = {"/": "GET HEAD", "/api/version": "GET HEAD", "/api/tags": "GET HEAD", "/api/ps": "GET"}
ROUTES |= dict.fromkeys(("/api/show", "/api/chat", "/api/generate", "/api/embed", "/api/embeddings"), "POST")
ROUTES |= {"/api/pull": "POST", "/api/copy": "POST", "/api/delete": "DELETE"}


def response(status: int, body: bytes, ctype: bytes = JSON_CT) -> list[Message]:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class FakeOllama(FakeServer):
    """The fake node. `await nursery.start(fake.run)` returns its URL; the knobs may change at any time.

    Knobs: `fail_next` (popped one per chat/generate: that status + {"error": msg}), `fail_after_chunks`
    (cut the connection after N chunks, no done chunk; non-stream: a bare 500), `stall_after_chunks` (go
    silent after N chunks), `flaky` (a share of chat/generate requests fail, drawn from a seeded `rng`:
    `flaky_mode` "500" answers HTTP 500, "cut" cuts after `flaky_cut_after` chunks). Observations: `requests` [(path, body)], `loaded` (names, like /api/ps),
    `active_streams`, `cancelled_streams` (the client went away first), `completed_streams` (counted
    before the last byte leaves, so a client that has read the whole reply sees it).
    """

    def __init__(
        self,
        models: list[FakeModel] | list[str],
        *,
        loaded: Iterable[str] = (),
        version: str = "0.12.3",
        reply: str = "Hello from the fake node!",
        chunk_delay: float = 0.0,
        num_chunks: int | None = None,
    ) -> None:
        specs = [FakeModel(m) if isinstance(m, str) else m for m in models]
        self.models = {norm(m.name): m for m in specs}
        self.loaded: list[str] = [self.models[norm(n)].name for n in loaded]
        self.version, self.reply, self.chunk_delay, self.num_chunks = version, reply, chunk_delay, num_chunks
        self.url = ""
        self.bind = "127.0.0.1:0"  # where `run` listens; tests keep the free-port default
        self.fail_next: list[tuple[int, str]] = []
        self.fail_after_chunks: int | None = None
        self.stall_after_chunks: int | None = None
        self.flaky, self.flaky_mode, self.flaky_cut_after = 0.0, "500", 0
        self.rng = random.Random(0)
        self.failed = 0  # requests the flaky knob failed
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.active_streams = self.cancelled_streams = self.completed_streams = 0
        self._expires: dict[str, float] = {}
        self._modified = rfc3339(time.time_ns() - 3 * 86_400 * 10**9, local=True)  # "pulled 3 days ago"

    def model_specs(self) -> list[FakeModel]:
        return list(self.models.values())

    async def handle(self, scope: Message, raw: bytes, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        allowed = ROUTES.get(path, "")
        if method not in allowed.split():
            text = b"405 method not allowed" if allowed else b"404 page not found"
            return await _send(send, response(405 if allowed else 404, text, b"text/plain"))
        try:
            if method in ("GET", "HEAD"):
                return await _send(send, self._get(path))
            try:
                req = decode(raw, path)
            except ApiError:
                self.requests.append((path, {}))
                raise
            self.requests.append((path, req))
            await self._post(path, req, receive, send)
        except ApiError as err:
            await _send(send, response(err.status, dumps({"error": err.message})))

    def _get(self, path: str) -> list[Message]:
        if path == "/":
            return response(200, b"Ollama is running", b"text/plain; charset=utf-8")
        if path == "/api/version":
            return response(200, dumps({"version": self.version}))
        if path == "/api/tags":
            return response(
                200, dumps({"models": [tag_entry(m, self._modified) for m in self.models.values()]})
            )
        expiry = {n: self._expires.get(n, time.time() + 300) for n in self.loaded}
        ps = [ps_entry(self.models[norm(n)], e) for n, e in sorted(expiry.items(), key=lambda x: -x[1])]
        return response(200, dumps({"models": ps}))

    def _model(self, name: str) -> FakeModel:
        model = self.models.get(norm(name)) if name else None
        if model is None:
            raise ApiError(404, f"model '{name}' not found")
        return model

    def _load(self, model: FakeModel, keep: float) -> bool:
        cold = model.name not in self.loaded
        if cold:
            self.loaded.append(model.name)
        self._expires[model.name] = time.time() + keep
        return cold

    async def _post(self, path: str, req: Body, receive: Receive, send: Send) -> None:
        name = req.get("model") or ""
        if path == "/api/show":
            if not name and not req.get("name"):
                raise ApiError(400, "model is required")
            return await _send(
                send, response(200, dumps(show_body(self._model(name or req["name"]), self._modified)))
            )
        if path in ("/api/pull", "/api/delete", "/api/copy"):
            return await self._manage(path, req, send)
        if path in ("/api/embed", "/api/embeddings"):
            self._load(self._model(name), keep_alive_seconds(req.get("keep_alive")))
            return await _send(send, response(200, dumps(embed_body(req, path == "/api/embeddings"))))
        chat = path == "/api/chat"
        if chat and not name:
            raise ApiError(400, "model is required")
        if self.fail_next:
            raise ApiError(*self.fail_next.pop(0))
        cut_after = self.fail_after_chunks
        if self.flaky and self.rng.random() < self.flaky:
            self.failed += 1
            if self.flaky_mode == "500":
                raise ApiError(500, "fake node failure")
            cut_after = self.flaky_cut_after
        model = self._model(name)
        if refused := capability_error(model, req, chat):
            raise refused
        keep = keep_alive_seconds(req.get("keep_alive"))
        cold = self._load(model, keep)
        if not chat and not req.get("prompt"):
            if keep == 0:
                self.loaded.remove(model.name)
            body = {"model": name, "created_at": rfc3339(time.time_ns()), "response": "", "done": True}
            return await _send(
                send, response(200, dumps(body | {"done_reason": "unload" if keep == 0 else "load"}))
            )
        await self._generate(req, chat, cold, receive, send, model.name if keep == 0 else None, cut_after)

    async def _manage(self, path: str, req: Body, send: Send) -> None:
        """Model management like Ollama's: pull streams progress and adds the model; delete and copy."""
        if path == "/api/delete":
            model = self._model(req.get("model") or req.get("name") or "")
            del self.models[norm(model.name)]
            return await _send(send, response(200, b""))
        if path == "/api/copy":
            source = self._model(req.get("source") or "")
            dest = FakeModel(req.get("destination") or "", size=source.size, family=source.family)
            self.models[norm(dest.name)] = dest
            return await _send(send, response(200, b""))
        name = req.get("model") or req.get("name") or ""
        digest = "sha256:" + "ab" * 32
        steps: list[Body] = [{"status": "pulling manifest"}]
        steps += [
            {"status": f"pulling {digest[7:19]}", "digest": digest, "total": 400, "completed": c}
            for c in (0, 200, 400)
        ]
        steps += [
            {"status": "verifying sha256 digest"},
            {"status": "writing manifest"},
            {"status": "success"},
        ]
        self.models[norm(name)] = FakeModel(name)
        if req.get("stream") is False:
            return await _send(send, response(200, dumps(steps[-1])))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson")],
            }
        )
        for step in steps[:-1]:
            await send({"type": "http.response.body", "body": dumps(step) + b"\n", "more_body": True})
        await send({"type": "http.response.body", "body": dumps(steps[-1]) + b"\n"})

    async def _generate(
        self,
        req: Body,
        chat: bool,
        cold: bool,
        receive: Receive,
        send: Send,
        unload: str | None,
        cut_after: int | None,
    ) -> None:
        """Send the reply (a stream, or one JSON at the end) while watching for the client going away.
        Counters and `loaded` settle before the last byte leaves: a client that read the reply sees them."""
        self.active_streams += 1
        gone = finished = False
        try:
            async with trio.open_nursery() as nursery:

                async def watch() -> None:
                    nonlocal gone
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    gone = True
                    nursery.cancel_scope.cancel()

                nursery.start_soon(watch)
                try:
                    last = await self._emit(req, chat, cold, send, cut_after)
                    if last is not None:
                        finished = True
                        self._settle(unload, completed=1)
                        await _send(send, last)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                    gone = True
                nursery.cancel_scope.cancel()
        finally:
            if not finished:
                self._settle(unload, cancelled=int(gone))

    def _settle(self, unload: str | None, *, completed: int = 0, cancelled: int = 0) -> None:
        self.active_streams -= 1
        self.completed_streams += completed
        self.cancelled_streams += cancelled
        if unload in self.loaded:
            self.loaded.remove(unload)

    async def _emit(
        self, req: Body, chat: bool, cold: bool, send: Send, cut_after: int | None
    ) -> list[Message] | None:
        """Send the chunks; return the final ASGI messages still to send, or None when the reply is cut."""
        chunks, reason, evals = plan_reply(req, chat, self.reply, self.num_chunks)
        final = final_body(req, chat, cold, reason, evals, max(self.chunk_delay, 0.02))
        stream = req.get("stream") is not False
        if stream:
            headers = [(b"content-type", b"application/x-ndjson")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
        for sent, chunk in enumerate([*chunks, None]):
            if cut_after is not None and sent >= cut_after:
                return None  # returning mid-body makes hypercorn drop the connection: a cut stream
            if self.stall_after_chunks is not None and sent >= self.stall_after_chunks:
                await trio.sleep_forever()
            if chunk is None:
                break
            if self.chunk_delay:
                await trio.sleep(self.chunk_delay)
            if stream:
                line = {"model": req["model"], "created_at": rfc3339(time.time_ns())} | chunk
                await send({"type": "http.response.body", "body": dumps(line) + b"\n", "more_body": True})
        head = {"model": req["model"], "created_at": rfc3339(time.time_ns())}
        if stream:
            return [{"type": "http.response.body", "body": dumps(head | final) + b"\n"}]
        return response(200, dumps(head | merge(chunks, final, chat)))


async def _send(send: Send, messages: list[Message]) -> None:
    for message in messages:
        await send(message)

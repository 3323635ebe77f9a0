"""A fake OpenAI-compatible node shaped like llama.cpp's `llama-server`, for fast tests of `--backend openai`.

A raw ASGI app on hypercorn's trio worker (127.0.0.1:0). `GET /health`, `/v1/models` (with llama.cpp's `meta`
and its Ollama-like `models` array), `/props` (total_slots, n_ctx, modalities, build_info), `/slots`;
`POST /v1/chat/completions` and `/v1/completions` (SSE: a role delta, one delta per word, a finish chunk with
`timings`, a usage chunk when asked, `[DONE]`; or one JSON answer), `/v1/embeddings` (501 unless `embeddings`).
`llama_cpp=False` behaves like vLLM: no `/props`/`/slots`, no `timings`. The real server is exercised by
tests/e2e; this one lets the suite check the translation field by field in milliseconds.
"""

from __future__ import annotations

import json
import time
from typing import Any

import trio
import trio.lowlevel
from fake_server import FakeServer, Message, Receive, Send


class FakeOpenAI(FakeServer):
    def __init__(
        self,
        model: str = "smollm2",
        *,
        reply: str = "Hi there from llama",
        embeddings: bool = False,
        vision: bool = False,
        llama_cpp: bool = True,
        slots: int = 2,
        n_ctx: int = 4096,
        tool_call: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.reply, self.embeddings, self.vision = model, reply, embeddings, vision
        self.llama_cpp, self.slots, self.n_ctx, self.tool_call = llama_cpp, slots, n_ctx, tool_call
        self.url = ""
        self.healthy = True
        self.embed_delay = 0.0
        self.fail_after_chunks: int | None = None
        self.requests: list[tuple[str, dict[str, Any]]] = []

    @property
    def words(self) -> list[str]:
        words = self.reply.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    def usage(self, req: dict[str, Any]) -> dict[str, int]:
        prompt = 7 + len(json.dumps(req.get("messages") or req.get("prompt") or "")) // 16
        return {
            "prompt_tokens": prompt,
            "completion_tokens": len(self.words),
            "total_tokens": prompt + len(self.words),
        }

    def timings(self, req: dict[str, Any]) -> dict[str, Any]:
        u = self.usage(req)
        return {
            "prompt_n": u["prompt_tokens"],
            "prompt_ms": 12.5,
            "predicted_n": u["completion_tokens"],
            "predicted_ms": 40.25,
        }

    async def handle(self, scope: Message, raw: bytes, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if method == "GET":
            return await self._get(path, send)
        req = json.loads(raw or b"{}")
        self.requests.append((path, req))
        if path == "/v1/embeddings":
            await trio.sleep(self.embed_delay)  # a busy server queues the request behind generations
            if not self.embeddings:
                return await _json(
                    send,
                    501,
                    {
                        "error": {
                            "code": 501,
                            "message": "This server does not support embeddings. Start it with `--embeddings`",
                            "type": "not_supported_error",
                        }
                    },
                )
            inputs = req["input"] if isinstance(req["input"], list) else [req["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": [float(len(s)), 0.5, -0.25]}
                for i, s in enumerate(inputs)
            ]
            usage = {"prompt_tokens": sum(len(s.split()) + 1 for s in inputs), "total_tokens": 0}
            return await _json(
                send, 200, {"object": "list", "model": self.model, "data": data, "usage": usage}
            )
        if path in ("/v1/chat/completions", "/v1/completions"):
            return await self._complete(path, req, send)
        await _json(
            send, 404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}
        )

    async def _get(self, path: str, send: Send) -> None:
        if path == "/health":
            if self.healthy:
                return await _json(send, 200, {"status": "ok"})
            return await _json(
                send, 503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
            )
        if path == "/v1/models":
            meta = {
                "vocab_type": 2,
                "n_vocab": 49152,
                "n_ctx_train": 8192,
                "n_embd": 576,
                "n_params": 134515008,
                "size": 98304000,
            }
            data: dict[str, Any] = {
                "id": self.model,
                "object": "model",
                "created": 1760000000,
                "owned_by": "llamacpp",
            }
            if self.llama_cpp:
                data["meta"] = meta
            else:
                data["max_model_len"] = self.n_ctx
            body: dict[str, Any] = {"object": "list", "data": [data]}
            if self.llama_cpp:
                body["models"] = [
                    {
                        "name": self.model,
                        "model": self.model,
                        "capabilities": ["completion"],
                        "details": {
                            "format": "gguf",
                            "family": "",
                            "parameter_size": "",
                            "quantization_level": "",
                        },
                    }
                ]
            return await _json(send, 200, body)
        if self.llama_cpp and path == "/props":
            return await _json(
                send,
                200,
                {
                    "total_slots": self.slots,
                    "default_generation_settings": {"n_ctx": self.n_ctx},
                    "modalities": {"vision": self.vision, "audio": False},
                    "build_info": "b9999-fake",
                },
            )
        if self.llama_cpp and path == "/slots":
            return await _json(
                send, 200, [{"id": i, "n_ctx": self.n_ctx, "is_processing": False} for i in range(self.slots)]
            )
        await _json(
            send, 404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}
        )

    def _choice(self, chat: bool, text: str, finish: str | None, stream: bool) -> dict[str, Any]:
        if not chat:
            return {"index": 0, "text": text, "finish_reason": finish}
        key = "delta" if stream else "message"
        part: dict[str, Any] = {"content": text} if text or not stream else {}
        if not stream:
            part["role"] = "assistant"
        return {"index": 0, key: part, "finish_reason": finish}

    async def _complete(self, path: str, req: dict[str, Any], send: Send) -> None:
        chat = path == "/v1/chat/completions"
        base = {
            "id": "chatcmpl-fake",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "b9999-fake",
        }
        if not req.get("stream"):
            choice = self._choice(chat, self.reply, "stop", False)
            if self.tool_call and chat:
                choice["message"] = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_x",
                            "type": "function",
                            "function": {
                                "name": self.tool_call["name"],
                                "arguments": json.dumps(self.tool_call["arguments"]),
                            },
                        }
                    ],
                }
                choice["finish_reason"] = "tool_calls"
            body = {
                **base,
                "object": "chat.completion" if chat else "text_completion",
                "choices": [choice],
                "usage": self.usage(req),
            }
            if self.llama_cpp:
                body["timings"] = self.timings(req)
            return await _json(send, 200, body)
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        obj = "chat.completion.chunk" if chat else "text_completion"

        async def event(payload: Any) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            await send(
                {"type": "http.response.body", "body": f"data: {data}\n\n".encode(), "more_body": True}
            )

        if chat:
            await event(
                {
                    **base,
                    "object": obj,
                    "choices": [
                        {"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}
                    ],
                }
            )
        finish = "stop"
        if self.tool_call and chat:
            args = json.dumps(self.tool_call["arguments"])
            first = {
                "index": 0,
                "id": "call_x",
                "type": "function",
                "function": {"name": self.tool_call["name"], "arguments": args[:5]},
            }
            await event(
                {
                    **base,
                    "object": obj,
                    "choices": [{"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None}],
                }
            )
            rest = {"index": 0, "function": {"arguments": args[5:]}}
            await event(
                {
                    **base,
                    "object": obj,
                    "choices": [{"index": 0, "delta": {"tool_calls": [rest]}, "finish_reason": None}],
                }
            )
            finish = "tool_calls"
        else:
            for n, word in enumerate(self.words):
                if self.fail_after_chunks is not None and n >= self.fail_after_chunks:
                    raise RuntimeError("fake node cut the stream")  # hypercorn drops the connection
                await event({**base, "object": obj, "choices": [self._choice(chat, word, None, True)]})
                await trio.lowlevel.checkpoint()
        last: dict[str, Any] = {**base, "object": obj, "choices": [self._choice(chat, "", finish, True)]}
        if self.llama_cpp:
            last["timings"] = self.timings(req)
        await event(last)
        if (req.get("stream_options") or {}).get("include_usage"):
            await event({**base, "object": obj, "choices": [], "usage": self.usage(req)})
        await event("[DONE]")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

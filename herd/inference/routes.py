"""The inference routes and their handlers: served by `herd.web.fastpath` below Quart (POST only; the Quart app
keeps a placeholder per path so other methods get its usual 405 and OPTIONS answers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from herd.inference import ollama, openai, responses
from herd.inference.call import Call, Reply
from herd.services import RouterServices

Handler = Callable[[RouterServices, Call], Awaitable[Reply]]

ROUTES: dict[str, Handler] = {
    "/api/chat": ollama.chat,
    "/api/generate": ollama.generate,
    "/api/embed": ollama.embed,
    "/api/embeddings": ollama.embeddings_legacy,
    "/v1/chat/completions": openai.chat_completions,
    "/v1/completions": responses.create_completion,
    "/v1/embeddings": openai.create_embeddings,
    "/v1/messages": openai.messages,
    "/v1/responses": responses.create_response,
}

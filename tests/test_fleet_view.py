"""The fleet frame's additive fields for the dashboard: request kinds per model and per request path."""

from __future__ import annotations

from herd.observe.fleet_view import model_kinds, request_kind


def test_model_kinds_from_capabilities() -> None:
    assert model_kinds("llama3.2:3b", frozenset({"completion", "embedding", "tools"})) == ["text"]
    assert model_kinds("llava:7b", frozenset({"completion", "vision", "embedding"})) == ["text", "vision"]
    assert model_kinds("nomic-embed-text", frozenset({"embedding"})) == ["embed"]
    assert model_kinds("nomic-embed-text", None) == ["embed"]  # no capabilities reported: from the name
    assert model_kinds("smollm2", None) == ["text"] and model_kinds("odd", frozenset({"tools"})) == ["text"]


def test_request_kind_from_path() -> None:
    assert [
        request_kind(p)
        for p in (
            "/api/chat",
            "/v1/chat/completions",
            "/api/embed",
            "/v1/embeddings",
            "/v1/images/generations",
            "/v1/audio/transcriptions",
            "/v1/messages",
        )
    ] == ["text", "text", "embed", "embed", "image", "speech", "text"]

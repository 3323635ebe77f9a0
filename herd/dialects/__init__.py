"""Codecs between the wire dialects callers speak and Ollama's native API (the router's backend dialect).

`ollama` parses and validates native requests and renders Ollama errors; `openai` converts OpenAI chat
requests to Ollama `/api/chat` bodies and Ollama chunks back to OpenAI replies. Everything here is pure and
synchronous: no I/O, no trio.
"""

"""herd: one OpenAI- and Ollama-compatible endpoint in front of a fleet of LLM servers.

Entry points live in `herd.cli`; the composition roots in `herd.nursery`.
"""

__version__ = "0.1.0"

"""The benchmark's fixed prompt set. Results are only comparable within one `VERSION`: change a prompt, its
token budget or the options below and the version must change too (stored with every result).

Each prompt is sent as one Ollama `/api/chat` turn, streamed, greedy (temperature 0, fixed seed), with a
`num_predict` cap so a run takes seconds per node and model, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VERSION = "herd-bench-1"
SEED = 1234

_PASSAGE = (
    "A home lab often grows one machine at a time. First a desktop with a graphics card runs a small model; "
    "then an old laptop joins for embeddings, a mini PC takes the speech-to-text jobs, and a workstation "
    "with a large card serves the biggest model anyone in the house wants. Each machine has its own memory, "
    "its own speed and its own habits: the laptop sleeps, the desktop is busy with games in the evening, "
    "and the workstation is fast but loud. A router in front of them decides where each request goes. It "
    "must know which models are loaded where, how long a cold load takes, how many requests each machine "
    "can run at once, and how quickly each one reads a prompt and writes an answer. Measured numbers beat "
    "guesses: the same prompts, sent the same way, on every machine, tell the router and its owner which "
    "machine to trust with which job, which model to keep loaded, and when the fleet is simply too small."
)


@dataclass(frozen=True, slots=True)
class BenchPrompt:
    name: str
    text: str
    num_predict: int


PROMPTS: tuple[BenchPrompt, ...] = (
    BenchPrompt("short", "In one sentence: why is the sky blue?", 48),
    BenchPrompt("read", _PASSAGE + "\n\nSummarise the text above in three short bullet points.", 96),
    BenchPrompt(
        "code",
        "Write a Python function that returns the n-th Fibonacci number iteratively, with a docstring.",
        128,
    ),
)


def body(model: str, prompt: BenchPrompt) -> dict[str, Any]:
    """The Ollama `/api/chat` body for one benchmark request."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt.text}],
        "stream": True,
        "options": {"temperature": 0, "seed": SEED, "num_predict": prompt.num_predict},
    }

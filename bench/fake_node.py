"""The fake Ollama node (`tests/fake_ollama.py`) as its own process, so a bench can attribute CPU to it.

    python -m bench.fake_node [--port 0] [--model llama3.2:3b] [--num-chunks N] [--chunk-delay S]

Prints its URL as the first stdout line once it accepts connections; serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fake_ollama import FakeModel, FakeOllama


async def serve(fake: FakeOllama) -> None:
    async with trio.open_nursery() as nursery:
        url = await nursery.start(fake.run)
        print(url, flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_node", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--model", action="append", help="model on disk and loaded (repeatable)")
    parser.add_argument(
        "--num-chunks", type=int, default=None, help="chunks per reply (default: one per word)"
    )
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds before each chunk")
    parser.add_argument("--reply", default="Hello from the fake node!")
    args = parser.parse_args(argv)
    models = args.model or ["llama3.2:3b"]
    fake = FakeOllama(
        [FakeModel(m) for m in models],
        loaded=models,
        reply=args.reply,
        chunk_delay=args.chunk_delay,
        num_chunks=args.num_chunks,
    )
    fake.bind = f"127.0.0.1:{args.port}"
    trio.run(serve, fake)


if __name__ == "__main__":
    main()

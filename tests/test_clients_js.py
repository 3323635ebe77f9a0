"""Client compatibility, JavaScript side: the official `ollama` and `openai` npm clients and the Vercel AI SDK's
default OpenAI provider (`ai` + `@ai-sdk/openai`, which speaks the Responses API) against a real router.

The packages pinned in tests/js/package.json are installed once into ~/.cache/herd/npm/<hash of that file>
(npm from the registry); tests/js/clients.mjs runs there and prints what each client got. Skipped, with the
reason, when node or npm is missing (`.ci/run` installs them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import trio
from harness import start_fleet

JS = Path(__file__).resolve().parent / "js"
CACHE = Path.home() / ".cache" / "herd" / "npm"
MODEL = "llama3.2:3b"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are not installed (apt-get install nodejs npm; .ci/run does)",
)


async def installed() -> Path:
    """The cache dir holding the pinned packages and the driver script, installed on first use (into a private
    directory first, then renamed into place, so concurrent first runs never share a half-installed tree)."""
    spec = (JS / "package.json").read_bytes()
    target = CACHE / hashlib.sha256(spec).hexdigest()[:16]
    if not (target / ".installed").exists():
        staging = CACHE / f"{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / "package.json").write_bytes(spec)
        cmd = ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"]
        result = await trio.run_process(
            cmd, cwd=staging, capture_stdout=True, capture_stderr=True, check=False
        )
        if result.returncode != 0:
            pytest.fail(f"npm install failed: {result.stderr.decode()[-2000:]}")
        (staging / ".installed").write_text("ok")
        try:
            staging.rename(target)
        except OSError:  # another run installed it first (or a stale half-install is in the way)
            if not (target / ".installed").exists():
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
    script = target / f"clients-{os.getpid()}.mjs"  # ESM resolves packages beside the script
    shutil.copyfile(JS / "clients.mjs", script)
    return script


async def test_js_clients_through_the_router(nursery: trio.Nursery, tmp_path: Path) -> None:
    script = await installed()
    fleet = await start_fleet(nursery, tmp_path)
    try:
        with trio.fail_after(120):
            result = await trio.run_process(
                ["node", script.name, fleet.url, MODEL],
                cwd=script.parent,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    finally:
        script.unlink()
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    got = json.loads(result.stdout.decode().strip().splitlines()[-1])
    reply = fleet.nodes["n1"].reply
    assert got.pop("ollama_list") == [MODEL]
    assert got.pop("ai_tool_calls") == [["get_weather", {"location": "Paris"}]]
    assert got == dict.fromkeys(got, reply) and len(got) == 9
    requests = fleet.nodes["n1"].requests
    assert [p for p, _ in requests].count("/api/chat") == 11  # every client's request reached the node
    # the second turn's reference to the first answer was resolved into the assistant message
    follow_up = next(r for p, r in requests if p == "/api/chat" and len(r["messages"]) == 3)
    assert follow_up["messages"][1] == {"role": "assistant", "content": reply}
    tool_step = requests[-1][1]["messages"]
    assert tool_step[-1] == {"role": "tool", "content": "sunny in Paris", "tool_name": "get_weather"}

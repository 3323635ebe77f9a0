"""Image generation and speech-to-text: heartbeat media entries, routing to the nodes that advertise them,
both dialects through the official `openai` client, the agent's detection and its local-command server, and
the media catalog."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from conftest import heartbeat_json
from fake_media import PNG, FakeMediaServer, FakeOllamaImages
from harness import Fleet, openai_client, start_fleet

from herd.config import MediaConfig
from herd.errors import BadRequest
from herd.fleet.heartbeat import parse_heartbeat
from herd.node.collect import BackendProbe
from herd.node.commands import CommandServer, render
from herd.node.media import MediaScout


async def post_media(
    fleet: Fleet, node_id: str, media: list[dict[str, str]], url: str = "http://127.0.0.1:9"
) -> None:
    body = heartbeat_json(node_id, url, [], [], media=media)
    resp = await fleet.http.post(fleet.url + "/heartbeat", json=body)
    assert resp.status_code == 200, resp.text


def test_heartbeat_media_entries_are_validated() -> None:
    good = heartbeat_json(
        "n", "http://h:1", [], media=[{"kind": "image", "model": "m", "url": "http://h:2/", "api": "openai"}]
    )
    assert parse_heartbeat(good).media == (
        {"kind": "image", "model": "m", "url": "http://h:2", "api": "openai"},
    )
    for bad in (
        [{"kind": "video", "model": "m", "url": "http://h", "api": "openai"}],
        [{"kind": "image", "model": "", "url": "http://h", "api": "openai"}],
        [{"kind": "image", "model": "m", "url": "ftp://h", "api": "openai"}],
        ["image"],
    ):
        with pytest.raises(BadRequest):
            parse_heartbeat(heartbeat_json("n", "http://h:1", [], media=bad))


async def test_images_openai_b64_and_url_and_herd_api(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = FakeMediaServer(models=("flux-schnell",))
    await nursery.start(server.run)
    fleet = await start_fleet(nursery, tmp_path, {})
    await post_media(
        fleet, "artist", [{"kind": "image", "model": "flux-schnell", "url": server.url, "api": "openai"}]
    )
    with openai_client(fleet.url) as c:
        res = await trio.to_thread.run_sync(
            lambda: c.images.generate(
                model="flux-schnell", prompt="a red fox", n=2, size="512x768", response_format="b64_json"
            )
        )
        assert [base64.b64decode(d.b64_json or "") for d in res.data] == [PNG, PNG]
        sent = server.requests[-1][1]
        assert sent["size"] == "512x768" and sent["n"] == 2 and sent["prompt"] == "a red fox"
        linked = await trio.to_thread.run_sync(
            lambda: c.images.generate(model="flux-schnell", prompt="a cat", response_format="url")
        )
    url = linked.data[0].url or ""
    assert url.startswith(fleet.url + "/herd/images/")
    fetched = await fleet.http.get(url)
    assert (
        fetched.status_code == 200
        and fetched.content == PNG
        and fetched.headers["content-type"] == "image/png"
    )
    own = await fleet.http.post(
        fleet.url + "/api/generate-image", json={"prompt": "a dog", "width": 256, "height": 256, "seed": 7}
    )
    assert own.status_code == 200 and own.headers["x-herd-node"] == "artist"
    body = own.json()
    assert (
        body["done"] is True
        and base64.b64decode(body["images"][0]) == PNG
        and body["model"] == "flux-schnell"
    )
    assert server.requests[-1][1]["size"] == "256x256" and server.requests[-1][1]["seed"] == 7
    traces = (await fleet.http.get(fleet.url + "/fleet/traces?limit=5")).json()
    del traces  # recorded like every request (the trace writer batches; contents are covered in test_traces)


async def test_ollama_image_model_and_routing_by_model(nursery: trio.Nursery, tmp_path: Path) -> None:
    olla, server = FakeOllamaImages(), FakeMediaServer(models=("sdxl",))
    await nursery.start(olla.run)
    await nursery.start(server.run)
    fleet = await start_fleet(nursery, tmp_path, {})
    await post_media(fleet, "mac", [{"kind": "image", "model": olla.model, "url": olla.url, "api": "ollama"}])
    await post_media(fleet, "pc", [{"kind": "image", "model": "sdxl", "url": server.url, "api": "openai"}])
    resp = await fleet.http.post(
        fleet.url + "/api/generate-image",
        json={"model": "x/z-image-turbo", "prompt": "p", "n": 2, "steps": 4},
    )
    assert (
        resp.status_code == 200 and resp.headers["x-herd-node"] == "mac" and len(resp.json()["images"]) == 2
    )
    path, sent = olla.requests[-1]
    assert (
        path == "/api/generate" and sent["width"] == 1024 and sent["steps"] == 4 and sent["stream"] is False
    )
    assert len(olla.requests) == 2  # one image per Ollama call
    other = await fleet.http.post(
        fleet.url + "/v1/images/generations",
        json={"model": "sdxl", "prompt": "p", "response_format": "b64_json"},
    )
    assert other.headers["x-herd-node"] == "pc"
    unknown = await fleet.http.post(
        fleet.url + "/v1/images/generations", json={"model": "dall-e-9", "prompt": "p"}
    )
    assert unknown.status_code == 404 and "sdxl" in unknown.json()["error"]["message"]
    listed = (await fleet.http.get(fleet.url + "/api/image-models")).json()["models"]
    assert [(m["name"], [n["node_id"] for n in m["nodes"]]) for m in listed] == [
        ("sdxl", ["pc"]),
        (olla.model, ["mac"]),
    ]
    models = (await fleet.http.get(fleet.url + "/v1/models")).json()["data"]
    assert {"id": "sdxl", "capabilities": ["image"], "nodes": ["pc"]}.items() <= next(
        m for m in models if m["id"] == "sdxl"
    ).items()


async def test_media_errors_are_clear(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = FakeMediaServer()
    await nursery.start(server.run)
    fleet = await start_fleet(nursery, tmp_path, {})
    none = await fleet.http.post(fleet.url + "/v1/images/generations", json={"prompt": "p"})
    assert none.status_code == 400 and "advertises image generation" in none.json()["error"]["message"]
    await post_media(
        fleet, "a", [{"kind": "image", "model": "flux-schnell", "url": server.url, "api": "openai"}]
    )
    for bad in (
        {},
        {"prompt": ""},
        {"prompt": "p", "size": "huge"},
        {"prompt": "p", "n": 0},
        {"prompt": "p", "response_format": "gif"},
    ):
        resp = await fleet.http.post(fleet.url + "/v1/images/generations", json=bad)
        assert resp.status_code == 400, bad
    broken = await fleet.http.post(fleet.url + "/v1/images/generations", content=b"{nope")
    assert broken.status_code == 400
    server.fail_next = 500
    failed = await fleet.http.post(fleet.url + "/v1/images/generations", json={"prompt": "p"})
    assert failed.status_code == 502 and "backend exploded" in failed.json()["error"]["message"]
    stt = await fleet.http.post(fleet.url + "/v1/audio/transcriptions", files={"file": ("a.wav", b"RIFF")})
    assert stt.status_code == 400 and "speech-to-text" in stt.json()["error"]["message"]


async def test_transcriptions_all_formats(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = FakeMediaServer(models=("whisper-large-v3",), transcript="the quick brown fox")
    await nursery.start(server.run)
    fleet = await start_fleet(nursery, tmp_path, {})
    await post_media(
        fleet,
        "ear",
        [{"kind": "transcription", "model": "whisper-large-v3", "url": server.url, "api": "openai"}],
    )
    audio = b"RIFF" + bytes(64000)
    with openai_client(fleet.url) as c:
        plain = await trio.to_thread.run_sync(
            lambda: c.audio.transcriptions.create(
                model="whisper-large-v3", file=("a.wav", audio), language="en"
            )
        )
        assert plain.text == "the quick brown fox"
        sent = server.requests[-1][1]
        assert sent["file"] == audio and sent["language"] == b"en" and sent["model"] == b"whisper-large-v3"
        verbose = await trio.to_thread.run_sync(
            lambda: c.audio.transcriptions.create(
                model="whisper-large-v3", file=("a.wav", audio), response_format="verbose_json"
            )
        )
        assert verbose.text == "the quick brown fox" and verbose.duration == len(audio) / 32000  # type: ignore[attr-defined]
        text = await trio.to_thread.run_sync(
            lambda: c.audio.transcriptions.create(
                model="whisper-large-v3", file=("a.wav", audio), response_format="text"
            )
        )
        assert str(text).strip() == "the quick brown fox"
    srt = await fleet.http.post(
        fleet.url + "/v1/audio/transcriptions",
        files={"file": ("a.wav", audio)},
        data={"response_format": "srt"},
    )
    assert srt.status_code == 200 and "-->" in srt.text
    own = await fleet.http.post(
        fleet.url + "/api/transcribe", json={"audio": base64.b64encode(audio).decode(), "language": "en"}
    )
    assert (
        own.status_code == 200
        and own.json()["text"] == "the quick brown fox"
        and own.headers["x-herd-node"] == "ear"
    )
    bad = await fleet.http.post(fleet.url + "/api/transcribe", json={"audio": "!!notbase64"})
    assert bad.status_code == 400


async def start_commands(nursery: trio.Nursery, **media: Any) -> tuple[MediaConfig, CommandServer]:
    """The agent's command server for `media` settings, on a free loopback port in the test's nursery."""
    cfg = MediaConfig(service_host="127.0.0.1", service_port=0, **media)
    commands = CommandServer(cfg)
    await nursery.start(commands.run)
    return cfg, commands


def test_render_never_uses_a_shell() -> None:
    argv = render("gen --prompt {prompt} --out {output}", {"prompt": "a; rm -rf /", "output": "/tmp/x.png"})
    assert argv == ["gen", "--prompt", "a; rm -rf /", "--out", "/tmp/x.png"]


IMAGE_SCRIPT = """
import sys, base64
out, prompt = sys.argv[1], sys.argv[2]
open(out, "wb").write(base64.b64decode({png!r}) + prompt.encode())
"""
STT_SCRIPT = """
import sys, json
data = open(sys.argv[1], "rb").read()
print(json.dumps({"text": f"heard {len(data)} bytes in " + sys.argv[2]}))
"""


async def test_local_commands_through_the_agent_server(nursery: trio.Nursery, tmp_path: Path) -> None:
    (tmp_path / "img.py").write_text(IMAGE_SCRIPT.format(png=base64.b64encode(PNG).decode()))
    (tmp_path / "stt.py").write_text(STT_SCRIPT)
    cfg, commands = await start_commands(
        nursery,
        image_command=f"{sys.executable} {tmp_path / 'img.py'} {{output}} {{prompt}}",
        stt_command=f"{sys.executable} {tmp_path / 'stt.py'} {{input}} {{language}}",
        image_model="sd-cli",
    )
    fleet = await start_fleet(nursery, tmp_path / "router", {})
    async with httpx.AsyncClient(trust_env=False) as client:
        scout = MediaScout(cfg, client, advertise=lambda u: u, service_url=lambda: commands.url)
        media = await scout.scan(BackendProbe(up=False), "http://127.0.0.1:9")
    assert [(m["kind"], m["model"]) for m in media] == [("image", "sd-cli"), ("transcription", "local-stt")]
    await post_media(fleet, "box", [dict(m) for m in media])
    with openai_client(fleet.url) as c:
        res = await trio.to_thread.run_sync(
            lambda: c.images.generate(model="sd-cli", prompt="owl", response_format="b64_json")
        )
        assert base64.b64decode(res.data[0].b64_json or "") == PNG + b"owl"
        heard = await trio.to_thread.run_sync(
            lambda: c.audio.transcriptions.create(model="local-stt", file=("a.ogg", b"12345"), language="fr")
        )
    assert heard.text == "heard 5 bytes in fr"


async def test_failing_command_is_a_502_with_its_stderr(nursery: trio.Nursery, tmp_path: Path) -> None:
    _, commands = await start_commands(
        nursery, image_command=f"{sys.executable} -c \"import sys; sys.exit('no GPU here')\""
    )
    fleet = await start_fleet(nursery, tmp_path, {})
    assert commands.url is not None
    await post_media(
        fleet, "box", [{"kind": "image", "model": "local-image", "url": commands.url, "api": "openai"}]
    )
    resp = await fleet.http.post(fleet.url + "/v1/images/generations", json={"prompt": "p"})
    assert resp.status_code == 502 and "no GPU here" in resp.json()["error"]["message"]


def test_agent_reports_ollama_image_models() -> None:
    from herd.node.media import ollama_images

    probe = BackendProbe(
        up=True,
        models=(
            {"name": "x/z-image-turbo:latest", "capabilities": ["image"]},
            {"name": "llama3.2:3b", "capabilities": ["completion"]},
        ),
    )
    assert ollama_images(probe, "http://h:11434") == [
        {"kind": "image", "model": "x/z-image-turbo:latest", "url": "http://h:11434", "api": "ollama"}
    ]


async def test_image_url_server_is_reported_while_it_answers(nursery: trio.Nursery) -> None:
    server = FakeMediaServer(models=("flux-schnell", "sdxl"))
    await nursery.start(server.run)
    cfg = MediaConfig(image_url=server.url, stt_url="http://127.0.0.1:9")
    async with httpx.AsyncClient(trust_env=False) as client:
        scout = MediaScout(cfg, client, advertise=lambda u: u, service_url=lambda: None)
        media: Any = await scout.scan(BackendProbe(up=False), "http://x")
    assert [m["model"] for m in media] == ["flux-schnell", "sdxl"]  # the dead STT server is not reported
    json.dumps(media)


SERIAL_SCRIPT = """
import base64, os, sys, time
log = sys.argv[2]
open(log, "a").write(f"start {{os.getpid()}}\\n")
time.sleep(0.2)
open(log, "a").write(f"end {{os.getpid()}}\\n")
open(sys.argv[1], "wb").write(base64.b64decode({png!r}))
"""


async def test_one_local_command_of_a_kind_at_a_time(nursery: trio.Nursery, tmp_path: Path) -> None:
    (tmp_path / "img.py").write_text(SERIAL_SCRIPT.format(png=base64.b64encode(PNG).decode()))
    log = tmp_path / "runs.log"
    _, commands = await start_commands(
        nursery, image_command=f"{sys.executable} {tmp_path / 'img.py'} {{output}} {log}"
    )
    statuses: list[int] = []

    async def generate(client: httpx.AsyncClient) -> None:
        resp = await client.post(f"{commands.url}/v1/images/generations", json={"prompt": "p"})
        statuses.append(resp.status_code)

    async with httpx.AsyncClient(trust_env=False, timeout=30) as client, trio.open_nursery() as inner:
        for _ in range(2):
            inner.start_soon(generate, client)
    assert statuses == [200, 200]
    kinds = [line.split()[0] for line in log.read_text().splitlines()]
    assert kinds == ["start", "end", "start", "end"]  # never two at once


async def test_image_and_speech_requests_keep_their_tags(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = FakeMediaServer(models=("flux-schnell", "whisper-1"), transcript="hello")
    await nursery.start(server.run)
    fleet = await start_fleet(nursery, tmp_path, {})
    await post_media(
        fleet,
        "m",
        [
            {"kind": "image", "model": "flux-schnell", "url": server.url, "api": "openai"},
            {"kind": "transcription", "model": "whisper-1", "url": server.url, "api": "openai"},
        ],
    )
    send, finished = trio.open_memory_channel[Any](10)
    fleet.router.services.recorder.sinks.append(send.send_nowait)
    header = {"X-Herd-Tags": "app-h"}
    body = {"prompt": "a fox", "response_format": "b64_json", "metadata": {"tags": ["app-b"]}}
    resp = await fleet.http.post(fleet.url + "/v1/images/generations", json=body, headers=header)
    assert resp.status_code == 200 and (await finished.receive()).tags == ("app-h", "app-b")
    assert "metadata" not in server.requests[-1][1]
    resp = await fleet.http.post(fleet.url + "/api/generate-image", json={"prompt": "x"}, headers=header)
    assert resp.status_code == 200 and (await finished.receive()).tags == ("app-h",)
    audio = b"RIFF" + bytes(640)
    resp = await fleet.http.post(
        fleet.url + "/v1/audio/transcriptions", files={"file": ("a.wav", audio)}, headers=header
    )
    assert resp.status_code == 200 and (await finished.receive()).tags == ("app-h",)
    resp = await fleet.http.post(
        fleet.url + "/api/transcribe",
        json={"audio": base64.b64encode(audio).decode(), "metadata": {"tags": ["stt"]}},
    )
    assert resp.status_code == 200 and (await finished.receive()).tags == ("stt",)

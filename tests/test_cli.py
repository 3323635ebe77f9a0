"""The CLI contract other tools depend on: command and flag names, environment variables, defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from herd import __version__
from herd.cli import build_parser, node_config, router_config


def parse(argv: list[str], env: dict[str, str] | None = None):
    env = env or {}
    return build_parser(env).parse_args(argv), env


def test_run_defaults() -> None:
    args, env = parse(["run"])
    cfg = router_config(args, env)
    assert (cfg.host, cfg.port, cfg.local_node, cfg.mdns) == ("0.0.0.0", 11435, True, True)
    assert cfg.local_ollama_url == "http://127.0.0.1:11434"
    assert cfg.data_dir == Path("~/.herd").expanduser()


def test_run_env_then_flags() -> None:
    env = {
        "FLEET_HOST": "127.0.0.1",
        "FLEET_PORT": "9000",
        "FLEET_DATA_DIR": "/tmp/d",
        "FLEET_NODE_OLLAMA_HOST": "http://10.0.0.2:11434/",
        "FLEET_MDNS_INTERFACES": "10.0.0.1, 10.0.0.3",
    }
    args, _ = parse(["run"], env)
    cfg = router_config(args, env)
    assert (cfg.host, cfg.port, str(cfg.data_dir)) == ("127.0.0.1", 9000, "/tmp/d")
    assert cfg.local_ollama_url == "http://10.0.0.2:11434"
    assert cfg.mdns_interfaces == ("10.0.0.1", "10.0.0.3")
    args, _ = parse(
        ["run", "--port", "9001", "--no-local-node", "--no-mdns", "--mdns-interface", "1.2.3.4"], env
    )
    cfg = router_config(args, env)
    assert (cfg.port, cfg.local_node, cfg.mdns, cfg.mdns_interfaces) == (9001, False, False, ("1.2.3.4",))


def test_routing_flags() -> None:
    args, env = parse(
        ["run", "--queue-timeout", "5", "--default-parallel", "2", "--vram-fallback", "--keep-alive", "1h"]
    )
    r = router_config(args, env).routing
    assert (r.queue_timeout, r.default_parallel, r.vram_fallback, r.keep_alive) == (5.0, 2, True, "1h")
    args, env = parse(["run", "--stream-idle-timeout", "60", "--first-byte-timeout", "90"])
    u = router_config(args, env).upstream
    assert (u.idle_timeout, u.first_byte_timeout) == (60.0, 90.0)
    args, env = parse(["run"], {"FLEET_VRAM_FALLBACK": "1", "FLEET_KEEP_ALIVE": "-1"})
    r = router_config(args, env).routing
    assert r.vram_fallback and r.keep_alive == -1


def test_fleet_timing_and_thinking_env_are_honoured() -> None:
    env = {
        "FLEET_HEARTBEAT_INTERVAL": "2",
        "FLEET_DEGRADED_TIMEOUT": "6",
        "FLEET_OFFLINE_TIMEOUT": "12",
        "FLEET_THINKING_OVERHEAD": "2.5",
        "FLEET_THINKING_MIN_PREDICT": "512",
        "FLEET_APP_WEIGHTS": "batch=0.5, chat=3",
        "FLEET_AFFINITY": "0",
    }
    args, _ = parse(["run"], env)
    cfg = router_config(args, env)
    assert (cfg.fleet.heartbeat_interval, cfg.fleet.degraded_after, cfg.fleet.offline_after) == (2, 6, 12)
    assert (cfg.routing.thinking_multiplier, cfg.routing.thinking_min_predict) == (2.5, 512)
    assert cfg.routing.app_weights == (("batch", 0.5), ("chat", 3.0)) and not cfg.routing.affinity
    args, _ = parse(["run", "--offline-after", "40", "--app-weight", "x=2", "--thinking-overhead", "3"], env)
    cfg = router_config(args, env)
    assert cfg.fleet.offline_after == 40 and cfg.routing.app_weights == (("x", 2.0),)
    assert cfg.routing.thinking_multiplier == 3
    defaults = router_config(*parse(["run"]))
    assert (defaults.fleet.degraded_after, defaults.routing.affinity, defaults.routing.app_weights) == (
        15,
        True,
        (),
    )
    with pytest.raises(SystemExit):
        router_config(*parse(["run", "--app-weight", "nope"]))


def test_node_env_and_flags() -> None:
    env = {
        "FLEET_NODE_ROUTER_URL": "http://r:11435/",
        "FLEET_NODE_OLLAMA_HOST": "http://127.0.0.1:11500",
        "FLEET_NODE_ID": "gpu-1",
        "FLEET_NODE_DATA_DIR": "/tmp/n1",
    }
    args, _ = parse(["node"], env)
    cfg = node_config(args, env)
    assert (cfg.router_url, cfg.ollama_url, cfg.node_id, str(cfg.data_dir)) == (
        "http://r:11435",
        "http://127.0.0.1:11500",
        "gpu-1",
        "/tmp/n1",
    )
    args, _ = parse(["node", "--node-id", "gpu-2", "--data-dir", "/tmp/n2"], {})
    cfg = node_config(args, {})
    assert cfg.router_url is None and cfg.node_id == "gpu-2" and str(cfg.data_dir) == "/tmp/n2"


def test_node_backend_kind_and_media_flags() -> None:
    env = {
        "FLEET_NODE_BACKEND": "openai",
        "FLEET_NODE_BACKEND_URL": "http://127.0.0.1:8080/",
        "FLEET_NODE_STT_URL": "http://s:9/",
    }
    args, _ = parse(["node", "--heartbeat-interval", "1.5"], env)
    cfg = node_config(args, env)
    assert (cfg.backend, cfg.ollama_url, cfg.heartbeat_interval) == ("openai", "http://127.0.0.1:8080", 1.5)
    assert cfg.media.stt_url == "http://s:9" and not cfg.media.needs_service
    args, _ = parse(
        [
            "node",
            "--backend",
            "ollama",
            "--image-command",
            "sd {prompt} {output}",
            "--image-model",
            "sd-turbo",
            "--service-port",
            "0",
        ],
        env,
    )
    cfg = node_config(args, env)
    assert cfg.backend == "ollama" and cfg.media.image_command == "sd {prompt} {output}"
    assert cfg.media.image_model == "sd-turbo" and cfg.media.service_port == 0 and cfg.media.needs_service
    with pytest.raises(SystemExit):
        parse(["node", "--backend", "vllm"], {})


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ([], ["--version", "--log-level"]),
        (
            ["run"],
            [
                "--host",
                "--port",
                "--data-dir",
                "--no-local-node",
                "--no-mdns",
                "--mdns-interface",
                "FLEET_HOST",
                "FLEET_PORT",
                "FLEET_DATA_DIR",
                "FLEET_NODE_OLLAMA_HOST",
            ],
        ),
        (
            ["node"],
            [
                "--router-url",
                "--ollama-url",
                "--backend",
                "--backend-url",
                "--image-url",
                "--image-command",
                "--stt-url",
                "--stt-command",
                "FLEET_NODE_BACKEND",
                "--node-id",
                "--data-dir",
                "FLEET_NODE_ROUTER_URL",
                "FLEET_NODE_OLLAMA_HOST",
                "FLEET_NODE_ID",
                "FLEET_NODE_DATA_DIR",
            ],
        ),
    ],
)
def test_help_explains_every_flag(command: list[str], flags: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "herd", *command, "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in flags:
        assert flag in out


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "herd", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"herd {__version__}"


def test_alias_flags_and_env() -> None:
    args, env = parse(["run", "--alias", "gpt-4o-mini=llama3.2:3b,qwen3:8b", "--alias", "emb=nomic"])
    assert router_config(args, env).routing.aliases == (
        ("gpt-4o-mini", ("llama3.2:3b", "qwen3:8b")),
        ("emb", ("nomic:latest",)),
    )
    args, env = parse(["run"], {"FLEET_ALIASES": "a=m1,m2; b=m3"})
    assert dict(router_config(args, env).routing.aliases) == {
        "a": ("m1:latest", "m2:latest"),
        "b": ("m3:latest",),
    }
    with pytest.raises(SystemExit):
        parse(["run", "--alias", "no-target"])
    args, env = parse(["run"], {"FLEET_ALIASES": "broken"})
    with pytest.raises(SystemExit):
        router_config(args, env)

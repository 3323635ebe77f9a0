"""The good-guest flags and their environment variables, and `herd node --print-probes` run for real on this
machine (nulls where it has no source: this machine has no GPU)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from herd.cli import build_parser, node_config, router_config


def test_guest_flag_defaults() -> None:
    cfg = node_config(build_parser({}).parse_args(["node"]), {})
    assert (cfg.meeting_pause, cfg.busy_apps, cfg.capacity_learning) == (False, (), True)
    assert router_config(build_parser({}).parse_args(["run"]), {}).routing.dynamic_context is False


def test_guest_env_then_flags() -> None:
    env = {
        "FLEET_MEETING_PAUSE": "1",
        "FLEET_BUSY_APPS": "blender, steam,,blender",
        "FLEET_CAPACITY_LEARNING": "0",
        "FLEET_DYNAMIC_CONTEXT": "yes",
    }
    cfg = node_config(build_parser(env).parse_args(["node"]), env)
    assert (cfg.meeting_pause, cfg.busy_apps, cfg.capacity_learning) == (True, ("blender", "steam"), False)
    argv = ["node", "--busy-app", "Final Cut Pro", "--busy-app", "unity", "--capacity-learning"]
    cfg = node_config(build_parser(env).parse_args(argv), env)
    assert cfg.busy_apps == ("Final Cut Pro", "unity") and cfg.capacity_learning is True
    cfg2 = node_config(build_parser({}).parse_args(["node", "--no-capacity-learning", "--meeting-pause"]), {})
    assert cfg2.capacity_learning is False and cfg2.meeting_pause is True
    assert router_config(build_parser(env).parse_args(["run"]), env).routing.dynamic_context is True


def test_print_probes_live(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "herd", "node", "--print-probes", "--meeting-pause"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"FLEET_NODE_DATA_DIR": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=True,
    )
    report = json.loads(out.stdout)
    assert set(report) == {"gpu", "thermal", "on_battery", "owner", "memory_ceiling"}
    if shutil.which("nvidia-smi") is None and not list(
        Path("/sys/class/drm").glob("card*/device/gpu_busy_percent")
    ):
        assert report["gpu"] is None  # unknown, never 0
    assert report["owner"]["cpu_percent"] >= 0 and report["owner"]["in_meeting"] in (True, False)
    assert report["memory_ceiling"] > 0

"""Logging: JSON lines in the data dir through one listener thread; a quiet console by default."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from herd.cli import build_parser
from herd.logsetup import setup


def test_json_lines_in_the_data_dir_and_a_quiet_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        listener = setup("warning", tmp_path / "logs")
        logging.getLogger("herd.test").info("node %s joined", "gpu-1")
        logging.getLogger("herd.test").warning("careful")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("herd.test").exception("it broke")
        listener.stop()
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    lines = [json.loads(x) for x in (tmp_path / "logs" / "herd.log").read_text().splitlines()]
    assert [(x["level"], x["message"]) for x in lines] == [
        ("info", "node gpu-1 joined"),
        ("warning", "careful"),
        ("error", "it broke"),
    ]
    assert "ValueError: boom" in lines[2]["exception"] and lines[0]["logger"] == "herd.test"
    err = capsys.readouterr().err
    assert "careful" in err and "joined" not in err  # info stays out of the console by default


def test_console_default_is_quiet() -> None:
    assert build_parser({}).parse_args(["run"]).log_level == "warning"

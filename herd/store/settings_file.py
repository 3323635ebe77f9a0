"""Runtime settings that survive a restart: the operator's toggles (`herd.runtime.RuntimeSettings`) and paused
nodes (`Registry.paused`) kept in `<data-dir>/settings.json`.

`SettingsKeeper.run` is a supervised service started before the web server: it loads the file (in a worker
thread) and applies it, reports ready, then watches for changes and writes the whole state atomically (a
temporary file, fsync, `os.replace`) in a worker thread, so a request that flips a toggle never waits on the
disk. It looks every `interval` seconds (a dict comparison) and writes once more on shutdown. A missing or
unreadable file starts from the defaults; unknown keys are ignored (an older router reading a newer file).

    {"version": 1, "toggles": {"vram_fallback": true, "auto_pull": false}, "paused": ["node-b"]}
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import trio

from herd.fleet.registry import Registry
from herd.routing import aliases as alias_table
from herd.runtime import RuntimeSettings

log = logging.getLogger("herd.settings")

FILENAME = "settings.json"
VERSION = 1


def state_of(settings: RuntimeSettings, paused: set[str] | frozenset[str]) -> dict[str, Any]:
    """What is saved (pure)."""
    return {"version": VERSION, "toggles": settings.as_json(), "paused": sorted(paused)}


def parse(text: str) -> tuple[dict[str, Any], list[str]]:
    """Toggles (and the alias table) and paused node ids from the file's text (pure); wrong types and unknown
    keys are dropped."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("settings.json must hold a JSON object")
    known = {f.name for f in fields(RuntimeSettings)}
    raw_toggles = data.get("toggles")
    toggles: dict[str, Any] = {}
    for key, value in raw_toggles.items() if isinstance(raw_toggles, dict) else ():
        if key == "aliases":
            try:
                toggles[key] = alias_table.from_json(value)
            except ValueError:
                continue
        elif key in known and isinstance(value, bool):
            toggles[key] = value
    raw_paused = data.get("paused")
    paused = [p for p in (raw_paused if isinstance(raw_paused, list) else []) if isinstance(p, str) and p]
    return toggles, paused


def read(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Blocking: the saved state, or nothing when the file is missing or unreadable (logged)."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, []
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return {}, []


def write_atomic(path: Path, state: dict[str, Any]) -> None:
    """Blocking: replace `path` with `state` so a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class SettingsKeeper:
    def __init__(
        self, data_dir: Path, settings: RuntimeSettings, registry: Registry, *, interval: float = 1.0
    ) -> None:
        self.path = data_dir / FILENAME
        self.settings = settings
        self.registry = registry
        self.interval = interval
        self.saved: dict[str, Any] | None = None
        self.writes = 0

    def _now(self) -> dict[str, Any]:
        return state_of(self.settings, self.registry.paused)

    async def _save_if_changed(self) -> None:
        state = self._now()
        if state != self.saved:
            try:
                await trio.to_thread.run_sync(write_atomic, self.path, state)
            except OSError as exc:  # a full or read-only disk must not take the router down
                log.warning("cannot save %s: %s", self.path, exc)
                return
            self.saved = state
            self.writes += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self.saved is None:  # a restarted keeper must not overwrite what changed since
            toggles, paused = await trio.to_thread.run_sync(read, self.path)
            for key, value in toggles.items():
                if key == "aliases":  # aliases set at run time come back; those of --alias still win
                    value = {**value, **self.settings.aliases}
                setattr(self.settings, key, value)
            self.registry.paused.update(paused)
            if toggles or paused:
                log.info("restored settings from %s: %s, paused %s", self.path, toggles, paused)
            self.saved = self._now() if self.path.exists() else {}
        task_status.started()
        try:
            while True:
                await trio.sleep(self.interval)
                await self._save_if_changed()
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + 2.0
                await self._save_if_changed()

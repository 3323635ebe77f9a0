"""The API keys in force, and the service that re-reads the keys file on SIGHUP.

`ApiKeys` holds an immutable `Keyring` (the `--api-key` keys plus the file's) that the guard reads per request;
`reload()` reads the file and swaps in a new keyring, or keeps the old one and raises if the file is broken.
`KeyReloader` is a service started by `herd.nursery.router` when a keys file is configured: it loads the file
before it reports started (a broken file fails start-up), then reloads on every SIGHUP (a broken file is
logged and the keys in force stay). Log lines name the file and count keys; they never contain a key.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import trio

from herd.guard.keys import ApiKey, Keyring, keys_checked, parse_keys_file

log = logging.getLogger("herd.guard")


class KeysFileError(ValueError):
    """The keys file cannot be read or has a bad line (the message names the file and the line, never a key)."""


class ApiKeys:
    def __init__(self, static: tuple[ApiKey, ...] = (), path: Path | None = None) -> None:
        self.static = static
        self.path = path
        self.ring = Keyring(keys_checked(static))

    def reload(self) -> Keyring:
        """Blocking (reads the file): run it in a thread from async code."""
        if self.path is None:
            return self.ring
        try:
            text = self.path.read_text(encoding="utf-8")
            ring = Keyring(keys_checked((*self.static, *parse_keys_file(text))))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise KeysFileError(f"API keys file {self.path}: {exc}") from None
        self.ring = ring
        return ring


class KeyReloader:
    """Service: load the keys file once, then again on every SIGHUP."""

    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys
        self.reloads = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        ring = await trio.to_thread.run_sync(self.keys.reload)
        log.info("API keys: %d loaded from %s", len(ring.keys), self.keys.path)
        with trio.open_signal_receiver(signal.SIGHUP) as signals:
            task_status.started()
            async for _ in signals:
                await self.reload_now()

    async def reload_now(self) -> None:
        try:
            ring = await trio.to_thread.run_sync(self.keys.reload)
        except KeysFileError as exc:
            log.error("%s; the keys in force stay", exc)
            return
        self.reloads += 1
        log.info("API keys: %d loaded from %s (SIGHUP)", len(ring.keys), self.keys.path)

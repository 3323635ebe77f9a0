"""Logging: structured JSON lines in `<data_dir>/logs/herd.log`, rotated daily (14 kept), and a quiet console
(warnings and errors unless asked for more). Records go through a `QueueHandler` to one `QueueListener` thread
that formats and writes them, so no request path ever formats JSON or touches a file."""

from __future__ import annotations

import copy
import json
import logging
import logging.handlers
import queue
import sys
from datetime import UTC, datetime
from pathlib import Path

NOISY = ("httpx", "hypercorn.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry)


class _Handoff(logging.handlers.QueueHandler):
    """Hands records to the listener thread with the message resolved and any traceback as text, kept apart
    (the stock `prepare` folds the traceback into the message)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


class _Listener(logging.handlers.QueueListener):
    def stop(self) -> None:
        super().stop()
        for handler in self.handlers:
            handler.close()


def setup(
    console_level: str, log_dir: Path | None, file_level: str = "info"
) -> logging.handlers.QueueListener:
    """Install the handlers on the root logger; the caller stops the returned listener at exit."""
    handlers: list[logging.Handler] = []
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(getattr(logging, console_level.upper()))
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers.append(console)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.TimedRotatingFileHandler(
            log_dir / "herd.log", when="midnight", backupCount=14, utc=True, encoding="utf-8"
        )
        rotating.setLevel(getattr(logging, file_level.upper()))
        rotating.setFormatter(JsonFormatter())
        handlers.append(rotating)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = _Listener(records, *handlers, respect_handler_level=True)
    root = logging.getLogger()
    root.handlers[:] = [_Handoff(records)]
    root.setLevel(min(h.level for h in handlers))
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    listener.start()
    return listener

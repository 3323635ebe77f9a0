"""Shared fixtures: heartbeat builders and a running router on 127.0.0.1:0 inside the test nursery."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def heartbeat_json(
    node_id: str, url: str, models: list[str], loaded: list[str] = (), **extra: Any
) -> dict[str, Any]:
    """A valid heartbeat body as a node agent would send it."""
    entries = [
        {
            "name": m,
            "model": m,
            "size": 2_000_000_000,
            "digest": "d" * 64,
            "modified_at": "2025-01-01T00:00:00Z",
            "details": {"family": "llama"},
        }
        for m in models
    ]
    ps = [
        {
            "name": m,
            "model": m,
            "size": 1000,
            "size_vram": 1000,
            "context_length": 4096,
            "expires_at": "2099-01-01T00:00:00Z",
        }
        for m in loaded
    ]
    body: dict[str, Any] = {
        "node_id": node_id,
        "agent_version": "test",
        "backend": "ollama",
        "backend_url": url,
        "backend_up": True,
        "backend_version": "0.12.3",
        "draining": False,
        "interval": 5.0,
        "host": {
            "cpu_percent": 1.0,
            "cpu_count": 2,
            "mem_total": 32 * 2**30,
            "mem_available": 16 * 2**30,
            "disk_free": 100 * 2**30,
            "load": [0.1, 0.1, 0.1],
        },
        "models": entries,
        "loaded": ps,
    }
    body.update(extra)
    return body

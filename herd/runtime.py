"""Settings an operator may change while the router runs (the dashboard's Settings tab): small, validated,
read by the request path on every decision. Everything else is the frozen config."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from herd.errors import BadRequest


@dataclass
class RuntimeSettings:
    vram_fallback: bool = False
    auto_pull: bool = False  # a model no node has is pulled onto the best node, then served

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: Any) -> None:
        if not isinstance(changes, dict) or not changes:
            raise BadRequest('send an object of settings to change, e.g. {"vram_fallback": true}')
        for key, value in changes.items():
            if key not in ("vram_fallback", "auto_pull"):
                raise BadRequest(f"unknown setting '{key}'", param=key)
            if not isinstance(value, bool):
                raise BadRequest(f"'{key}' must be true or false", param=key)
        for key, value in changes.items():
            setattr(self, key, value)

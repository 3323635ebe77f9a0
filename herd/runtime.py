"""Settings an operator may change while the router runs (the dashboard's Settings tab): small, validated,
read by the request path on every decision. Everything else is the frozen config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from herd.errors import BadRequest
from herd.routing import aliases as alias_table


@dataclass
class RuntimeSettings:
    vram_fallback: bool = False
    auto_pull: bool = False  # a model no node has is pulled onto the best node, then served
    # NAME -> models tried in order; replaced as a whole (a new dict) on every change
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: Any) -> None:
        if not isinstance(changes, dict) or not changes:
            raise BadRequest('send an object of settings to change, e.g. {"vram_fallback": true}')
        parsed: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "aliases":
                try:
                    parsed[key] = alias_table.from_json(value)
                except ValueError as exc:
                    raise BadRequest(str(exc), param=key) from exc
                continue
            if key not in ("vram_fallback", "auto_pull"):
                raise BadRequest(f"unknown setting '{key}'", param=key)
            if not isinstance(value, bool):
                raise BadRequest(f"'{key}' must be true or false", param=key)
            parsed[key] = value
        for key, value in parsed.items():
            setattr(self, key, value)

"""Model aliases (pure): names clients hard-code (`gpt-4o-mini`, `claude-3-5-haiku`, `text-embedding-3-small`)
mapped to fleet models, each with fallbacks tried in order.

Declared with `herd run --alias NAME=MODEL[,FALLBACK...]` (repeatable; env `FLEET_ALIASES`, entries separated by
`;` or spaces) and changed at run time through `POST /fleet/settings {"aliases": {NAME: [MODEL, ...]}}`.
`herd.routing.policies.plan` resolves an alias to its models (only the first with `X-Herd-Strict: 1`); the
listings add one entry per alias (`alias_of`), built here from the fleet's merged entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from herd.fleet.state import normalize_model

Aliases = Mapping[str, tuple[str, ...]]
NONE: Aliases = MappingProxyType({})


def parse_one(spec: str) -> tuple[str, tuple[str, ...]]:
    """`NAME=MODEL[,FALLBACK...]` → (name as written, normalized models). Raises ValueError. The name is
    listed as written (`gpt-4o-mini`, as clients expect it) and matched like any model name (`:latest`)."""
    name, eq, targets = spec.partition("=")
    models = tuple(normalize_model(m) for m in targets.split(",") if m.strip())
    if not eq or not name.strip() or not models:
        raise ValueError(f"alias {spec!r} must look like NAME=MODEL[,FALLBACK...]")
    return name.strip(), models


def parse(specs: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Several specs (flags, or the environment split on `;` and whitespace); later ones win."""
    return dict(parse_one(s) for spec in specs for s in spec.replace(";", " ").split())


def from_json(value: Any) -> dict[str, tuple[str, ...]]:
    """The runtime setting: `{NAME: [MODEL, ...] | "MODEL,FALLBACK"}`. Raises ValueError."""
    if not isinstance(value, dict):
        raise ValueError("'aliases' must be an object of NAME: [MODEL, ...]")
    out: dict[str, tuple[str, ...]] = {}
    for name, targets in value.items():
        listed = targets.split(",") if isinstance(targets, str) else targets
        if not isinstance(listed, list) or not all(isinstance(m, str) for m in listed):
            raise ValueError(f"alias {name!r} must map to a model name or a list of model names")
        out.update([parse_one(f"{name}={','.join(listed)}")])
    return out


def to_json(aliases: Aliases) -> dict[str, list[str]]:
    return {name: list(models) for name, models in aliases.items()}


def resolve(aliases: Aliases, model: str) -> tuple[str, ...] | None:
    """The models an alias stands for, in order; None when `model` is no alias."""
    if not aliases:
        return None
    wanted = normalize_model(model)
    return next((models for name, models in aliases.items() if normalize_model(name) == wanted), None)


def tag_entries(aliases: Aliases, merged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One `/api/tags` entry per alias: its first available target's entry renamed, marked `alias_of`."""
    by_name = {normalize_model(e["name"]): e for e in merged}
    out = []
    for name, models in aliases.items():
        target = next((by_name[m] for m in models if m in by_name), None)
        entry = {**(target or {"details": {}}), "name": name, "model": name}
        entry["alias_of"] = list(models)
        entry["nodes"] = target["nodes"] if target else []
        out.append(entry)
    return out

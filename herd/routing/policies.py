"""Model policies (pure): what to ask the fleet for, and how a body is adjusted for the node that serves it.

- `fallback_models` (client, in the body): tried in order when the requested model cannot be served.
- VRAM-aware fallback (off unless enabled): when the requested model is loaded nowhere but a model of the same
  family is hot, serve that instead of cold-loading. Always visible: `X-Herd-Fallback: requested -> served`.
- `X-Herd-Strict: 1`: never substitute a model.
- Context protection: a `num_ctx` smaller than the context the model is already loaded with would force a
  reload; it is dropped instead (the larger loaded context serves the request just as well).
- Thinking models get `num_predict` inflated so the answer survives the reasoning (default x4, at least 1024).
- `keep_alive` policy: the router's default is added when the client sets none.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from herd.errors import BadRequest
from herd.fleet.state import FleetSnapshot, NodeState, normalize_model
from herd.routing.aliases import NONE, Aliases, resolve
from herd.validate import model_name

THINKING = re.compile(r"(^|/)(deepseek-r1|qwq|gpt-oss|phi4-reasoning|magistral)([:-]|$)")
QWEN3 = re.compile(r"(^|/)qwen3([:-]|$)")
MAX_FALLBACKS = 16
MAX_PREDICT = 2**31 - 1  # an inflated num_predict stops here (Ollama reads it as an int)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    vram_fallback: bool = False
    thinking_multiplier: float = 4.0
    thinking_min_predict: int = 1024
    keep_alive: str | int | None = None
    # model aliases (herd.routing.aliases): the first target serves, the rest fall back
    aliases: Aliases = field(default_factory=lambda: NONE)


@dataclass(frozen=True, slots=True)
class Plan:
    """The models to try, in order, and what the node should receive for each."""

    requested: str
    models: tuple[str, ...]
    strict: bool
    body: dict[str, Any]  # the caller's body without herd's own fields
    thinking: bool
    num_predict: int | None  # after inflation, for the budget headers
    needs: frozenset[str] = frozenset()  # capabilities the request needs ("vision" when it carries images)


def is_thinking(model: str, body: dict[str, Any]) -> bool:
    name = model.lower()
    if THINKING.search(name):
        return True
    return bool(QWEN3.search(name)) and body.get("think") not in (None, False)


def _family(snap: FleetSnapshot, model: str) -> str | None:
    for node in snap.nodes.values():
        for entry in node.heartbeat.models:
            if normalize_model(entry["name"]) == model:
                family = (entry.get("details") or {}).get("family")
                return family if isinstance(family, str) and family else None
    return None


def vram_substitute(snap: FleetSnapshot, model: str) -> str | None:
    """A hot model of the same family, when `model` itself is loaded on no routable node."""
    routable = [n for n in snap.nodes.values() if n.routable]
    if any(model in n.loaded for n in routable):
        return None
    family = _family(snap, model)
    if family is None:
        return None
    for node in sorted(routable, key=lambda n: n.node_id):
        for entry in node.heartbeat.loaded:
            name = normalize_model(entry["name"])
            details = entry.get("details") or {}
            if name != model and (details.get("family") == family or _family(snap, name) == family):
                return name
    return None


def plan(
    body: dict[str, Any],
    *,
    strict_header: str | None,
    snap: FleetSnapshot,
    cfg: PolicyConfig,
    task: str = "completion",
) -> Plan:
    """Decide models and body adjustments that do not depend on the node. `task` is the capability the
    request needs ("completion" or "embedding"). Raises `BadRequest`."""
    requested = normalize_model(body["model"])
    fallbacks = body.get("fallback_models", [])
    if not isinstance(fallbacks, list) or not all(isinstance(m, str) and m for m in fallbacks):
        raise BadRequest("'fallback_models' must be a list of model names", param="fallback_models")
    if len(fallbacks) > MAX_FALLBACKS:
        raise BadRequest(f"at most {MAX_FALLBACKS} 'fallback_models'", param="fallback_models")
    for i, name in enumerate(fallbacks):
        model_name(name, f"fallback_models[{i}]")
    strict = (strict_header or "").strip().lower() in ("1", "true", "yes")
    clean = {k: v for k, v in body.items() if k != "fallback_models"} if "fallback_models" in body else body
    targets = resolve(cfg.aliases, requested) or ()
    if targets:  # an alias: its first model is what is asked for; strict requests get no further substitute
        requested = targets[0]
        clean = {**clean, "model": requested}
    models = [requested]
    if not strict:
        models += targets[1:]
        models += [normalize_model(m) for m in fallbacks if normalize_model(m) != requested]
        if cfg.vram_fallback:
            substitute = vram_substitute(snap, requested)
            if substitute is not None:
                models.insert(0, substitute)  # hot sibling first; the requested model if that fails
    thinking = is_thinking(requested, clean)
    num_predict: int | None = None
    options = clean.get("options")
    if isinstance(options, dict) and isinstance(options.get("num_predict"), int):
        num_predict = options["num_predict"]
        if thinking and num_predict > 0:
            inflated = min(num_predict * cfg.thinking_multiplier, MAX_PREDICT)  # a float: never past int64
            num_predict = max(int(inflated), cfg.thinking_min_predict, min(num_predict, MAX_PREDICT))
            clean = {**clean, "options": {**options, "num_predict": num_predict}}
    if cfg.keep_alive is not None and "keep_alive" not in clean:
        clean = {**clean, "keep_alive": cfg.keep_alive}
    messages = clean.get("messages")
    has_images = bool(clean.get("images")) or (
        isinstance(messages, list) and any(isinstance(m, dict) and m.get("images") for m in messages)
    )
    needs = frozenset({task, "vision"}) if has_images else frozenset({task})
    return Plan(requested, tuple(dict.fromkeys(models)), strict, clean, thinking, num_predict, needs)


def loaded_context(node: NodeState, model: str) -> int | None:
    for entry in node.heartbeat.loaded:
        if normalize_model(entry["name"]) == model:
            ctx = entry.get("context_length")
            return ctx if isinstance(ctx, int) and ctx > 0 else None
    return None


def body_for(p: Plan, node: NodeState, model: str) -> tuple[dict[str, Any], bool]:
    """The body for `model` on `node`: the served model name, and context protection. Returns (body, whether
    `num_ctx` was dropped to protect the loaded context)."""
    body = p.body if model == p.requested else {**p.body, "model": model}
    options = body.get("options")
    if isinstance(options, dict) and isinstance(options.get("num_ctx"), int):
        loaded = loaded_context(node, model)
        if loaded is not None and options["num_ctx"] < loaded:
            trimmed = {k: v for k, v in options.items() if k != "num_ctx"}
            return {**body, "options": trimmed}, True
    return body, False


def thinking_headers(p: Plan, final: dict[str, Any], thinking: str, content: str) -> dict[str, str]:
    """Diagnostics for a finished non-stream reply of a thinking model. Ollama counts thinking and answer
    tokens together in `eval_count`; the split is estimated from the two texts' lengths."""
    if not p.thinking:
        return {}
    total = final.get("eval_count")
    total = total if isinstance(total, int) else 0
    share = len(thinking) / (len(thinking) + len(content)) if thinking or content else 0.0
    thinking_tokens = round(total * share)
    headers = {
        "X-Thinking-Tokens": str(thinking_tokens),
        "X-Output-Tokens": str(total - thinking_tokens),
        "X-Done-Reason": str(final.get("done_reason") or ""),
    }
    if p.num_predict:
        headers["X-Budget-Used"] = f"{total / p.num_predict:.2f}"
    return headers


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()

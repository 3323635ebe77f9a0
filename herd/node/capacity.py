"""The capacity learner: when this machine's owner usually needs it, as 168 hourly slots (Monday 00:00 first,
local time) of owner load in [0, 1]. Each sample updates its slot's time-weighted mean, older weeks fading
with a half-life (`HALF_LIFE`, two weeks), so a changed routine shows within a week or two. Pure state plus a
JSON file in the agent's data dir (written atomically, in a thread, by the agent); the learned week goes out
with every heartbeat as `capacity` (`herd.fleet.guest`), and the router prefers nodes likely to stay free for
the length of a long request (`herd.routing.guest.outlook`).

A sample's load is `min(1, owner CPU / BUSY_CPU)`, or 1 while a configured heavy app runs or a meeting holds the
camera or microphone.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herd.fleet.guest import SLOTS, Owner

HALF_LIFE = 14 * 86400.0  # s: a week ago counts 0.71, a month ago 0.23
BUSY_CPU = 50.0  # owner CPU (percent of the machine) that counts as fully busy
MAX_STEP = 600.0  # s: a gap longer than this (agent stopped) counts as one sample of this length
FILE = "capacity.json"
# 1970-01-01 was a Thursday: 72 hours after a Monday 00:00.
_EPOCH_WEEK_HOURS = 72.0


def week_position(epoch: float, utc_offset: float) -> float:
    """Hours since Monday 00:00 in local time, in [0, 168)."""
    return ((epoch + utc_offset) / 3600.0 + _EPOCH_WEEK_HOURS) % SLOTS


def load_of(owner: Owner | None) -> float | None:
    """One sample's owner load in [0, 1]; None when the owner's load is unknown (nothing to learn)."""
    if owner is None or owner.cpu_percent is None:
        return None
    if owner.busy_apps or owner.in_meeting:
        return 1.0
    return min(1.0, max(0.0, owner.cpu_percent / BUSY_CPU))


@dataclass
class CapacityLearner:
    values: list[float] = field(default_factory=lambda: [0.0] * SLOTS)
    weights: list[float] = field(default_factory=lambda: [0.0] * SLOTS)  # decayed seconds observed
    updated: list[float] = field(default_factory=lambda: [0.0] * SLOTS)  # epoch of each slot's last sample
    last: float | None = None  # epoch of the last sample
    half_life: float = HALF_LIFE

    def observe(self, epoch: float, utc_offset: float, load: float) -> None:
        """Fold one sample in: it stands for the time since the previous one (capped at `MAX_STEP`)."""
        step = MAX_STEP if self.last is None else min(MAX_STEP, max(0.0, epoch - self.last))
        self.last = epoch
        if step <= 0:
            return
        slot = int(week_position(epoch, utc_offset)) % SLOTS
        decay = 0.5 ** (max(0.0, epoch - self.updated[slot]) / self.half_life) if self.weights[slot] else 0.0
        kept = self.weights[slot] * decay
        self.values[slot] = (self.values[slot] * kept + min(1.0, max(0.0, load)) * step) / (kept + step)
        self.weights[slot] = kept + step
        self.updated[slot] = epoch

    def week(self) -> tuple[float, ...]:
        """The learned load per slot (0 for a slot never observed), rounded for the wire."""
        return tuple(round(v, 3) for v in self.values)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "half_life": self.half_life,
            "last": self.last,
            "slots": [[v, w, u] for v, w, u in zip(self.values, self.weights, self.updated, strict=True)],
        }

    @classmethod
    def from_json(cls, raw: Any, half_life: float = HALF_LIFE) -> CapacityLearner:
        """A learner from its saved form; anything malformed starts afresh (it is only a forecast)."""
        fresh = cls(half_life=half_life)
        if not isinstance(raw, dict) or raw.get("version") != 1:
            return fresh
        slots = raw.get("slots")
        if not isinstance(slots, list) or len(slots) != SLOTS:
            return fresh
        try:
            rows = [(float(v), float(w), float(u)) for v, w, u in slots]
        except (TypeError, ValueError):
            return fresh
        if not all(0 <= v <= 1 and w >= 0 and math.isfinite(u) for v, w, u in rows):
            return fresh
        last = raw.get("last")
        return cls(
            values=[r[0] for r in rows],
            weights=[r[1] for r in rows],
            updated=[r[2] for r in rows],
            last=float(last) if isinstance(last, int | float) else None,
            half_life=half_life,
        )


def load_file(data_dir: Path) -> CapacityLearner:
    """Blocking: read the saved week (a fresh learner when there is none or it is unreadable)."""
    try:
        raw = json.loads((data_dir / FILE).read_text())
    except (OSError, ValueError):
        return CapacityLearner()
    return CapacityLearner.from_json(raw)


def save_file(data_dir: Path, state: dict[str, Any]) -> None:
    """Blocking: write atomically (a temporary file renamed over the old one)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, data_dir / FILE)

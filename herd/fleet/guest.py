"""The "good guest" part of a heartbeat: what a node knows about the machine beyond CPU and memory (GPU use,
thermal state, battery, the owner's own load, the memory herd may count on, the owner's learned week).

The agent (`herd.node.probes`, `herd.node.capacity`) fills a `GuestState`; `herd.fleet.heartbeat` carries it
as optional top-level keys and calls `parse_guest` on what arrives. Every value is optional: `None` means the
node could not tell (no GPU tool, no thermal sensor, no battery interface), and is sent as `null`, never as 0.
Sizes and ranges are bounded; anything else is a 400.

    "gpu": [{"name": "NVIDIA RTX 4090", "util_percent": 37.0, "mem_used": 1, "mem_total": 1, "temp_c": 61.0}],
    "thermal": {"state": "nominal", "throttling": false, "temp_c": 54.0, "cpu_freq_ratio": 0.71},
    "on_battery": false,
    "owner": {"cpu_percent": 12.5, "mem_bytes": 1, "busy_apps": ["blender"], "in_meeting": null},
    "memory_ceiling": 1,
    "capacity": [0.0, ... 168 numbers in [0, 1] ...], "capacity_now": 33.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from herd.errors import BadRequest

SLOTS = 168  # hourly slots in a week, Monday 00:00 first, in the node's local time
MAX_GPUS = 16
MAX_APPS = 32
MAX_NAME = 120
THERMAL_STATES = ("nominal", "fair", "serious", "critical")


@dataclass(frozen=True, slots=True)
class Gpu:
    name: str | None = None
    util_percent: float | None = None
    mem_used: int | None = None  # bytes
    mem_total: int | None = None  # bytes
    temp_c: float | None = None


@dataclass(frozen=True, slots=True)
class Thermal:
    state: str | None = None  # one of THERMAL_STATES
    throttling: bool | None = None
    temp_c: float | None = None  # hottest sensor
    cpu_freq_ratio: float | None = None  # mean current / maximum CPU frequency


@dataclass(frozen=True, slots=True)
class Owner:
    cpu_percent: float | None = None  # the machine's CPU used by everything but the backend and herd, 0-100
    mem_bytes: int | None = None
    busy_apps: tuple[str, ...] = ()  # configured heavy apps that are running
    in_meeting: bool | None = None  # only with --meeting-pause; None when not asked or not known


@dataclass(frozen=True, slots=True)
class GuestState:
    gpu: tuple[Gpu, ...] | None = None
    thermal: Thermal | None = None
    on_battery: bool | None = None
    owner: Owner | None = None
    memory_ceiling: int | None = None  # bytes herd may count on for models after the owner's apps
    capacity: tuple[float, ...] | None = None  # SLOTS learned owner-load shares, 0 = always free
    capacity_now: float | None = None  # the node's position in its week, in hours since Monday 00:00

    def to_json(self) -> dict[str, Any]:
        return {
            "gpu": None if self.gpu is None else [_gpu_json(g) for g in self.gpu],
            "thermal": None if self.thermal is None else _thermal_json(self.thermal),
            "on_battery": self.on_battery,
            "owner": None if self.owner is None else _owner_json(self.owner),
            "memory_ceiling": self.memory_ceiling,
            "capacity": None if self.capacity is None else list(self.capacity),
            "capacity_now": self.capacity_now,
        }


NO_GUEST = GuestState()  # a heartbeat that says nothing beyond CPU and memory


def _gpu_json(g: Gpu) -> dict[str, Any]:
    return {
        "name": g.name,
        "util_percent": g.util_percent,
        "mem_used": g.mem_used,
        "mem_total": g.mem_total,
        "temp_c": g.temp_c,
    }


def _thermal_json(t: Thermal) -> dict[str, Any]:
    return {
        "state": t.state,
        "throttling": t.throttling,
        "temp_c": t.temp_c,
        "cpu_freq_ratio": t.cpu_freq_ratio,
    }


def _owner_json(o: Owner) -> dict[str, Any]:
    return {
        "cpu_percent": o.cpu_percent,
        "mem_bytes": o.mem_bytes,
        "busy_apps": list(o.busy_apps),
        "in_meeting": o.in_meeting,
    }


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _bad(name: str, why: str) -> BadRequest:
    return BadRequest(f"heartbeat: '{name}' {why}", param=name)


def _num(obj: dict[str, Any], key: str, where: str, lo: float, hi: float) -> float | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi:
        raise _bad(_at(where, key), f"must be null or a number in [{lo:g}, {hi:g}]")
    return float(v)


def _bytes(obj: dict[str, Any], key: str, where: str) -> int | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**62:
        raise _bad(_at(where, key), "must be null or a non-negative whole number of bytes")
    return v


def _bool(obj: dict[str, Any], key: str, where: str) -> bool | None:
    v = obj.get(key)
    if v is not None and not isinstance(v, bool):
        raise _bad(_at(where, key), "must be null, true or false")
    return v


def _name(v: Any, where: str) -> str:
    if not isinstance(v, str) or not 0 < len(v) <= MAX_NAME:
        raise _bad(where, f"must be a string of 1-{MAX_NAME} characters")
    return v


def _obj(raw: Any, name: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad(name, "must be null or an object")
    return raw


def _gpus(raw: Any) -> tuple[Gpu, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > MAX_GPUS:
        raise _bad("gpu", f"must be null or a list of at most {MAX_GPUS} objects")
    out = []
    for entry in raw:
        e = _obj(entry, "gpu")
        if e is None:
            raise _bad("gpu", "entries must be objects")
        name = e.get("name")
        out.append(
            Gpu(
                name=None if name is None else _name(name, "gpu.name"),
                util_percent=_num(e, "util_percent", "gpu", 0, 100),
                mem_used=_bytes(e, "mem_used", "gpu"),
                mem_total=_bytes(e, "mem_total", "gpu"),
                temp_c=_num(e, "temp_c", "gpu", -50, 200),
            )
        )
    return tuple(out)


def _thermal(raw: Any) -> Thermal | None:
    t = _obj(raw, "thermal")
    if t is None:
        return None
    state = t.get("state")
    if state is not None and state not in THERMAL_STATES:
        raise _bad("thermal.state", f"must be null or one of {THERMAL_STATES}")
    return Thermal(
        state=state,
        throttling=_bool(t, "throttling", "thermal"),
        temp_c=_num(t, "temp_c", "thermal", -50, 200),
        cpu_freq_ratio=_num(t, "cpu_freq_ratio", "thermal", 0, 2),
    )


def _owner(raw: Any) -> Owner | None:
    o = _obj(raw, "owner")
    if o is None:
        return None
    apps = o.get("busy_apps", [])
    if not isinstance(apps, list) or len(apps) > MAX_APPS:
        raise _bad("owner.busy_apps", f"must be a list of at most {MAX_APPS} names")
    return Owner(
        cpu_percent=_num(o, "cpu_percent", "owner", 0, 100),
        mem_bytes=_bytes(o, "mem_bytes", "owner"),
        busy_apps=tuple(_name(a, "owner.busy_apps") for a in apps),
        in_meeting=_bool(o, "in_meeting", "owner"),
    )


def _capacity(raw: Any) -> tuple[float, ...] | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, list)
        or len(raw) != SLOTS
        or not all(isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x <= 1 for x in raw)
    ):
        raise _bad("capacity", f"must be null or {SLOTS} numbers in [0, 1]")
    return tuple(float(x) for x in raw)


def parse_guest(obj: dict[str, Any]) -> GuestState:
    """The optional guest keys of a decoded heartbeat (all absent: an empty `GuestState`)."""
    return GuestState(
        gpu=_gpus(obj.get("gpu")),
        thermal=_thermal(obj.get("thermal")),
        on_battery=_bool(obj, "on_battery", ""),
        owner=_owner(obj.get("owner")),
        memory_ceiling=_bytes(obj, "memory_ceiling", ""),
        capacity=_capacity(obj.get("capacity")),
        capacity_now=_num(obj, "capacity_now", "", 0, SLOTS),
    )

"""Thermal state (pure): Linux thermal zones (`/sys/class/thermal/thermal_zone*/temp` and their trip points)
and CPU frequency (`scaling_cur_freq` / `cpuinfo_max_freq`), macOS `pmset -g therm` (CPU speed limit, thermal
warning level). Throttling is what the platform says: a zone at or past a passive/hot/critical trip point, or a
CPU speed limit under 100 %; a low frequency on its own is not throttling (an idle CPU clocks down)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from herd.fleet.guest import Thermal

PMSET_THERM = ("pmset", "-g", "therm")
_THROTTLE_TRIPS = ("passive", "hot", "critical")


@dataclass(frozen=True, slots=True)
class Zone:
    """One thermal zone as read from sysfs: `temp` and its `trip_point_N_type` / `trip_point_N_temp` pairs
    (all millidegrees Celsius, as text)."""

    temp: str
    trips: tuple[tuple[str, str], ...] = ()


def _milli(text: str) -> float | None:
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value / 1000 if -50_000 <= value <= 200_000 else None  # sensors report nonsense when absent


def zone_state(zone: Zone) -> tuple[float | None, str | None]:
    """(temperature, "nominal" / "serious" / "critical" or None when the zone has no throttling trip)."""
    temp = _milli(zone.temp)
    trips: dict[str, float] = {}
    for kind, value in zone.trips:
        t = _milli(value)
        kind = kind.strip()
        if kind in _THROTTLE_TRIPS and t is not None and t > 0:
            trips[kind] = min(t, trips.get(kind, t))
    if temp is None or not trips:
        return temp, None
    if "critical" in trips and temp >= trips["critical"]:
        return temp, "critical"
    if any(temp >= t for t in trips.values()):
        return temp, "serious"
    return temp, "nominal"


def cpu_freq_ratio(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Mean of `scaling_cur_freq / cpuinfo_max_freq` over the CPUs that report both (kHz, as text)."""
    ratios = []
    for cur, top in pairs:
        try:
            c, m = int(cur.strip()), int(top.strip())
        except ValueError:
            continue
        if c > 0 and m > 0:
            ratios.append(min(2.0, c / m))
    return round(sum(ratios) / len(ratios), 3) if ratios else None


_ORDER = ("nominal", "fair", "serious", "critical")


def linux_thermal(zones: Sequence[Zone], freq_pairs: Sequence[tuple[str, str]]) -> Thermal | None:
    """All zones and CPUs folded: the hottest temperature, the worst state, throttling if any zone is past a
    throttling trip. None when there is nothing at all to report."""
    temps, states = [], []
    for zone in zones:
        temp, state = zone_state(zone)
        if temp is not None:
            temps.append(temp)
        if state is not None:
            states.append(state)
    ratio = cpu_freq_ratio(freq_pairs)
    if not temps and not states and ratio is None:
        return None
    state = max(states, key=_ORDER.index) if states else None
    return Thermal(
        state=state,
        throttling=None if state is None else state != "nominal",
        temp_c=max(temps) if temps else None,
        cpu_freq_ratio=ratio,
    )


def parse_pmset_therm(text: str) -> Thermal | None:
    """`CPU_Speed_Limit = 58` (percent of full speed the system allows) and `Thermal Warning Level = N`; the
    "No thermal warning level has been recorded" notes mean nominal."""
    limit = re.search(r"CPU_Speed_Limit\s*=\s*(\d+)", text)
    level = re.search(r"thermal warning level\s*=\s*(\d+)", text, re.IGNORECASE)
    quiet = "No thermal warning level has been recorded" in text
    if limit is None and level is None and not quiet:
        return None
    state = "nominal"
    if limit is not None:
        pct = int(limit.group(1))
        state = "nominal" if pct >= 100 else "fair" if pct >= 80 else "serious" if pct >= 50 else "critical"
    if level is not None:
        by_level = _ORDER[min(int(level.group(1)), 3)]
        state = max(state, by_level, key=_ORDER.index)
    return Thermal(state=state, throttling=state != "nominal")

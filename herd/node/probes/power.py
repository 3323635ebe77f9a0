"""On battery or not (pure): macOS `pmset -g batt`, Linux `/sys/class/power_supply/*` (`type`, `online`,
`status`). A machine with no power interface at all (a VM, a container) is `None`: unknown, not "on mains"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

PMSET_BATT = ("pmset", "-g", "batt")


def parse_pmset_batt(text: str) -> bool | None:
    """`Now drawing from 'Battery Power'` / `'AC Power'` (or `'UPS Power'`)."""
    for line in text.splitlines():
        if "drawing from" in line:
            if "'Battery Power'" in line:
                return True
            if "'AC Power'" in line or "'UPS Power'" in line:
                return False
    return None


def parse_power_supply(supplies: Sequence[Mapping[str, str]]) -> bool | None:
    """Each supply as its sysfs files' text ({"type": "Mains", "online": "1"}, {"type": "Battery", "status":
    "Discharging"}). Mains (or USB-C power) online means not on battery; a battery discharging with no mains
    online means on battery."""
    if not supplies:
        return None
    mains = [s for s in supplies if s.get("type", "").strip() in ("Mains", "USB", "USB_C", "USB_PD")]
    batteries = [s for s in supplies if s.get("type", "").strip() == "Battery"]
    if any(s.get("online", "").strip() == "1" for s in mains):
        return False
    statuses = {s.get("status", "").strip() for s in batteries}
    if "Discharging" in statuses:
        return True
    if statuses & {"Charging", "Full", "Not charging"}:
        return False
    if mains and all(s.get("online", "").strip() == "0" for s in mains) and batteries:
        return True
    return None

"""Sampling the probes (I/O): sysfs and /proc reads and psutil's process table in worker threads, platform
tools (`nvidia-smi`, `ioreg`, `pmset`) as subprocesses, each source under its own deadline. A source that is
missing, fails or runs out of time is `None` in the result. The agent calls `GuestProbe.sample` once per
heartbeat; `herd node --print-probes` calls it once and prints what this machine reports."""

from __future__ import annotations

import glob
import os
import shutil
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import psutil
import trio

from herd.fleet.guest import Gpu, GuestState, Owner, Thermal
from herd.fleet.heartbeat import HostStats
from herd.node.probes import gpu, meeting, owner, power, thermal

T = TypeVar("T")


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def read_linux_thermal(sys_root: Path) -> Thermal | None:
    zones = []
    for zdir in sorted(glob.glob(str(sys_root / "class/thermal/thermal_zone*"))):
        temp = _read(f"{zdir}/temp")
        if temp is None:
            continue
        trips = []
        for tfile in sorted(glob.glob(f"{zdir}/trip_point_*_type")):
            kind, value = _read(tfile), _read(tfile.removesuffix("_type") + "_temp")
            if kind is not None and value is not None:
                trips.append((kind, value))
        zones.append(thermal.Zone(temp, tuple(trips)))
    pairs = []
    for cdir in sorted(glob.glob(str(sys_root / "devices/system/cpu/cpu[0-9]*/cpufreq"))):
        cur, top = _read(f"{cdir}/scaling_cur_freq"), _read(f"{cdir}/cpuinfo_max_freq")
        if cur is not None and top is not None:
            pairs.append((cur, top))
    return thermal.linux_thermal(zones, pairs)


def read_linux_power(sys_root: Path) -> bool | None:
    supplies = []
    for sdir in sorted(glob.glob(str(sys_root / "class/power_supply/*"))):
        entry = {k: v for k in ("type", "online", "status") if (v := _read(f"{sdir}/{k}")) is not None}
        if entry:
            supplies.append(entry)
    return power.parse_power_supply(supplies)


def read_amd(sys_root: Path) -> tuple[Gpu, ...] | None:
    out = []
    for ddir in sorted(glob.glob(str(sys_root / "class/drm/card[0-9]*/device"))):
        if not Path(ddir, "gpu_busy_percent").exists():
            continue
        temps = sorted(glob.glob(f"{ddir}/hwmon/hwmon*/temp1_input"))
        card = gpu.parse_amdgpu(
            f"AMD {Path(ddir).parent.name}",
            _read(f"{ddir}/gpu_busy_percent"),
            _read(f"{ddir}/mem_info_vram_used"),
            _read(f"{ddir}/mem_info_vram_total"),
            _read(temps[0]) if temps else None,
        )
        if card is not None:
            out.append(card)
    return tuple(out) or None


def read_procs() -> list[owner.Proc]:
    """One pass over the process table; psutil keeps the process objects, so CPU is since the last pass."""
    out = []
    for p in psutil.process_iter(["pid", "name", "cpu_percent", "memory_info", "exe"]):
        info = p.info
        mem = info.get("memory_info")
        exe = info.get("exe") or ""
        out.append(
            owner.Proc(
                pid=info["pid"],
                name=info.get("name") or "",
                cpu_percent=float(info.get("cpu_percent") or 0.0),
                rss=int(mem.rss) if mem is not None else 0,
                cmdline0=os.path.basename(exe),
            )
        )
    return out


class GuestProbe:
    """What this machine says beyond CPU and memory. Pure configuration; every sample is fresh I/O."""

    def __init__(
        self,
        *,
        busy_apps: Sequence[str] = (),
        meeting_pause: bool = False,
        timeout: float = 2.0,
        sys_root: Path = Path("/sys"),
        platform: str = sys.platform,
        meeting_reader: Callable[[], bool | None] = meeting.read_linux,
        own_pids: frozenset[int] | None = None,
    ) -> None:
        self.busy_apps = tuple(busy_apps)
        self.meeting_pause = meeting_pause
        self.timeout = timeout
        self.sys_root = sys_root
        self.platform = platform
        self.meeting_reader = meeting_reader
        self.own_pids = own_pids if own_pids is not None else frozenset({os.getpid()})

    async def _bounded(self, fn: Callable[[], Awaitable[T | None]]) -> T | None:
        result: T | None = None
        with trio.move_on_after(self.timeout):
            result = await fn()
        return result

    async def _thread(self, fn: Callable[[], T | None]) -> T | None:
        async def go() -> T | None:
            # abandoned on timeout: these only read, and the next heartbeat samples afresh
            return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)

        return await self._bounded(go)

    async def _command(self, argv: Sequence[str]) -> str | None:
        if shutil.which(argv[0]) is None:
            return None

        async def go() -> str | None:
            try:
                done = await trio.run_process(
                    list(argv), capture_stdout=True, capture_stderr=True, check=False
                )
            except OSError:
                return None
            return done.stdout.decode(errors="replace") if done.returncode == 0 else None

        return await self._bounded(go)

    async def _gpus(self) -> tuple[Gpu, ...] | None:
        found: list[Gpu] = []
        text = await self._command(gpu.NVIDIA_QUERY)
        if text is not None:
            found.extend(gpu.parse_nvidia_smi(text))
        if self.platform == "darwin":
            text = await self._command(gpu.IOREG_QUERY)
            if text is not None:
                found.extend(gpu.parse_ioreg_accelerator(text))
        else:
            found.extend(await self._thread(lambda: read_amd(self.sys_root)) or ())
        return tuple(found) or None

    async def sample(self, host: HostStats) -> GuestState:
        """GPU, thermal, battery, owner load and memory ceiling (no capacity: the learner adds that)."""
        gpus: tuple[Gpu, ...] | None = None
        therm: Thermal | None = None
        battery: bool | None = None
        procs: list[owner.Proc] | None = None
        in_meeting: bool | None = None

        async def do_gpu() -> None:
            nonlocal gpus
            gpus = await self._gpus()

        async def do_thermal() -> None:
            nonlocal therm, battery
            if self.platform == "darwin":
                text = await self._command(thermal.PMSET_THERM)
                therm = thermal.parse_pmset_therm(text) if text is not None else None
                text = await self._command(power.PMSET_BATT)
                battery = power.parse_pmset_batt(text) if text is not None else None
            else:
                therm = await self._thread(lambda: read_linux_thermal(self.sys_root))
                battery = await self._thread(lambda: read_linux_power(self.sys_root))

        async def do_owner() -> None:
            nonlocal procs, in_meeting
            procs = await self._thread(read_procs)
            if self.meeting_pause and self.platform.startswith("linux"):
                in_meeting = await self._thread(self.meeting_reader)

        async with trio.open_nursery() as nursery:
            for job in (do_gpu, do_thermal, do_owner):
                nursery.start_soon(job)
        who: Owner | None = None
        ceiling: int | None = None
        if procs is not None:
            who, busy_rss = owner.owner_load(
                procs, cpu_count=host.cpu_count or 1, own_pids=self.own_pids, busy_apps=self.busy_apps
            )
            who = replace(who, in_meeting=in_meeting)
            if host.mem_total:
                ceiling = owner.memory_ceiling(host.mem_available, host.mem_total, busy_rss)
        return GuestState(gpu=gpus, thermal=therm, on_battery=battery, owner=who, memory_ceiling=ceiling)

"""GPU utilisation and memory from captured platform output (pure): NVIDIA's `nvidia-smi` CSV, Apple Silicon's
`ioreg -r -d 1 -w 0 -c IOAccelerator` PerformanceStatistics, AMD's amdgpu sysfs files. A value the tool does
not give (`[N/A]`, `[Not Supported]`, a missing key) is `None`, never 0."""

from __future__ import annotations

import re

from herd.fleet.guest import Gpu

MIB = 2**20
NVIDIA_QUERY = (
    "nvidia-smi",
    "--query-gpu=name,utilization.gpu,memory.used,memory.total,temperature.gpu",
    "--format=csv,noheader,nounits",
)
IOREG_QUERY = ("ioreg", "-r", "-d", "1", "-w", "0", "-c", "IOAccelerator")


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None  # "[N/A]", "[Not Supported]", "" ...
    return value if value >= 0 else None


def _mib(text: str) -> int | None:
    value = _number(text)
    return None if value is None else int(value * MIB)


def parse_nvidia_smi(text: str) -> tuple[Gpu, ...]:
    """One GPU per line of `name, util %, mem used MiB, mem total MiB, temp C`."""
    out = []
    for line in text.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) != 5 or not cols[0]:
            continue
        util, temp = _number(cols[1]), _number(cols[4])
        out.append(
            Gpu(
                name=cols[0][:120],
                util_percent=None if util is None else min(util, 100.0),
                mem_used=_mib(cols[2]),
                mem_total=_mib(cols[3]),
                temp_c=None if temp is None else min(temp, 200.0),
            )
        )
    return tuple(out)


_BLOCK = re.compile(r"^\+-o ", re.MULTILINE)
_MODEL = re.compile(r'"model" = "([^"]+)"')
_STATS = re.compile(r'"PerformanceStatistics" = \{([^}]*)\}')


def _stat(stats: str, key: str) -> int | None:
    m = re.search(rf'"{re.escape(key)}"=(\d+)', stats)
    return int(m.group(1)) if m else None


def parse_ioreg_accelerator(text: str) -> tuple[Gpu, ...]:
    """Apple GPUs: "Device Utilization %" and "In use system memory" from each accelerator's statistics. The
    memory is unified, so there is no separate GPU total (the host's memory is it)."""
    out = []
    for block in _BLOCK.split(text):
        stats = _STATS.search(block)
        if stats is None:
            continue
        model = _MODEL.search(block)
        util = _stat(stats.group(1), "Device Utilization %")
        out.append(
            Gpu(
                name=model.group(1)[:120] if model else None,
                util_percent=None if util is None else float(min(util, 100)),
                mem_used=_stat(stats.group(1), "In use system memory"),
            )
        )
    return tuple(out)


def parse_amdgpu(
    name: str | None, busy: str | None, vram_used: str | None, vram_total: str | None, temp_milli: str | None
) -> Gpu | None:
    """One amdgpu card from its sysfs files (`gpu_busy_percent`, `mem_info_vram_used`, `mem_info_vram_total`,
    `hwmon/hwmon*/temp1_input`); each argument is the file's text or None when it could not be read."""
    util = _number(busy) if busy is not None else None
    used = _number(vram_used) if vram_used is not None else None
    total = _number(vram_total) if vram_total is not None else None
    temp = _number(temp_milli) if temp_milli is not None else None
    if util is None and used is None and total is None:
        return None
    return Gpu(
        name=name,
        util_percent=None if util is None else min(util, 100.0),
        mem_used=None if used is None else int(used),
        mem_total=None if total is None else int(total),
        temp_c=None if temp is None else min(temp / 1000, 200.0),
    )

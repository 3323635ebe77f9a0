"""The owner's load and the memory herd may count on (pure): from one sample of the process table, the CPU
and memory of everything that is neither the backend nor herd itself, which of the configured heavy apps run,
and the memory ceiling left for models after the owner's apps.

    ceiling = max(0, mem_available - HEADROOM * mem_total - BUSY_GROWTH * memory of the running heavy apps)

(heavy apps grow: a render or a game takes more the longer it runs). The agent samples the process table with
psutil in a thread (`herd.node.probes.sample`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from herd.fleet.guest import Owner

HEADROOM = 0.05  # share of the machine's memory always left to the owner
BUSY_GROWTH = 0.5  # extra share of a running heavy app's memory kept free for it
# Process names of the backends herd serves (their load is herd's, not the owner's).
BACKEND_NAMES = frozenset(
    {"ollama", "ollama_llama_server", "llama-server", "llama_server", "vllm", "lms", "LM Studio", "mlx_lm"}
)


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    name: str
    cpu_percent: float  # of one core, as psutil reports it (can exceed 100 on many cores)
    rss: int
    cmdline0: str = ""  # the executable's base name when the process name is truncated


def _matches(proc: Proc, names: Collection[str]) -> bool:
    low = {n.lower() for n in names}
    return proc.name.lower() in low or (bool(proc.cmdline0) and proc.cmdline0.lower() in low)


def owner_load(
    procs: Sequence[Proc],
    *,
    cpu_count: int,
    own_pids: Collection[int],
    busy_apps: Collection[str],
    backend_names: Collection[str] = BACKEND_NAMES,
) -> tuple[Owner, int]:
    """(the owner's load, the memory of the running heavy apps). CPU is a share of the whole machine, 0-100."""
    cpu = 0.0
    mem = 0
    running: set[str] = set()
    busy_rss = 0
    for p in procs:
        if p.pid in own_pids or _matches(p, backend_names):
            continue
        cpu += max(0.0, p.cpu_percent)
        mem += max(0, p.rss)
        for app in busy_apps:
            if _matches(p, (app,)):
                running.add(app)
                busy_rss += max(0, p.rss)
    share = min(100.0, cpu / max(1, cpu_count))
    return Owner(cpu_percent=round(share, 1), mem_bytes=mem, busy_apps=tuple(sorted(running))), busy_rss


def memory_ceiling(mem_available: int, mem_total: int, busy_rss: int) -> int:
    """Bytes herd may count on for models after the owner's apps (never more than what is available)."""
    reserve = HEADROOM * mem_total + BUSY_GROWTH * busy_rss
    return int(max(0.0, min(float(mem_available), mem_available - reserve)))

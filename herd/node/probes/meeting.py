"""Is a camera or microphone in use on this machine (pure parts plus a small Linux reader)? Used only with
`--meeting-pause`; only the boolean leaves the machine, never which process or device.

Linux: a process holds a video device open (`/proc/<pid>/fd/*` → `/dev/video*`), or a capture stream is
running (`/proc/asound/card*/pcm*c/sub*/status` says `state: RUNNING`, or a process holds `/dev/snd/pcmC*D*c`
open). Elsewhere the answer is `None` (unknown): macOS keeps its camera/microphone indicators to itself
without entitlements this agent does not have."""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

CAPTURE_DEVICES = ("/dev/video*", "/dev/snd/pcmC*D*c")
PCM_STATUS = "/proc/asound/card*/pcm*c/sub*/status"


def capture_running(statuses: Iterable[str]) -> bool:
    """Any ALSA capture substream status file says `state: RUNNING`."""
    return any(line.strip() == "state: RUNNING" for text in statuses for line in text.splitlines())


def holds_device(targets: Iterable[str], patterns: Sequence[str]) -> bool:
    """Any open-file target (what `/proc/<pid>/fd/N` points at) matches a capture device pattern."""
    return any(fnmatch.fnmatchcase(t, p) for t in targets for p in patterns)


def _fd_targets(proc: Path) -> Iterable[str]:
    try:
        pids = [e for e in os.listdir(proc) if e.isdigit()]
    except OSError:
        return
    for pid in pids:
        fd_dir = proc / pid / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to read
        for fd in fds:
            try:
                yield os.readlink(fd_dir / fd)
            except OSError:
                continue


def read_linux(
    proc: Path = Path("/proc"),
    devices: Sequence[str] = CAPTURE_DEVICES,
    pcm_status: str = PCM_STATUS,
) -> bool | None:
    """Blocking (walks /proc): run it in a thread. None when /proc is not there to read."""
    if not proc.is_dir():
        return None
    statuses = []
    for path in glob.glob(pcm_status):
        try:
            statuses.append(Path(path).read_text())
        except OSError:
            continue
    return capture_running(statuses) or holds_device(_fd_targets(proc), devices)

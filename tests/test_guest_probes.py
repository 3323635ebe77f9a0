"""The good-guest probes: each parser over captured platform output (tests/fixtures/guest), the sysfs readers
over fixture trees, the meeting detector against a real process holding a stand-in device open, and a live
sample of this machine (nulls where it has no source, never zeros)."""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from herd.fleet.guest import Gpu, Thermal
from herd.fleet.heartbeat import HostStats
from herd.node.collect import host_stats
from herd.node.probes import gpu, meeting, owner, power, thermal
from herd.node.probes.sample import GuestProbe, read_amd, read_linux_power, read_linux_thermal

FIX = Path(__file__).parent / "fixtures" / "guest"
MIB = 2**20


def text(name: str) -> str:
    return (FIX / name).read_text()


def test_nvidia_smi_csv() -> None:
    a, b = gpu.parse_nvidia_smi(text("nvidia-smi.csv"))
    assert a == Gpu("NVIDIA GeForce RTX 4090", 37.0, 10240 * MIB, 24564 * MIB, 61.0)
    # what the tool cannot say stays unknown, never 0
    assert b.util_percent is None and b.temp_c is None and b.mem_used == 812 * MIB
    assert gpu.parse_nvidia_smi("") == () and gpu.parse_nvidia_smi("garbage line\n") == ()


def test_ioreg_accelerator_performance_statistics() -> None:
    (apple,) = gpu.parse_ioreg_accelerator(text("ioreg-accelerator.txt"))
    assert apple == Gpu(name="Apple M2 Max", util_percent=23.0, mem_used=4718592000, mem_total=None)
    assert gpu.parse_ioreg_accelerator("+-o IOService  <class IOService>\n") == ()


def test_amd_sysfs_tree() -> None:
    (card,) = read_amd(FIX / "sys-laptop") or ()
    assert card == Gpu("AMD card0", 64.0, 2147483648, 8573157376, 58.0)
    assert read_amd(FIX / "sys-desktop") is None
    assert gpu.parse_amdgpu("x", None, None, None, None) is None


def test_linux_thermal_zones_trip_points_and_cpufreq() -> None:
    hot = read_linux_thermal(FIX / "sys-laptop")
    # zone1 is past its passive trip (an active trip is only a fan and does not count)
    assert hot == Thermal(state="serious", throttling=True, temp_c=97.0, cpu_freq_ratio=0.4)
    cool = read_linux_thermal(FIX / "sys-desktop")
    assert cool == Thermal(state="nominal", throttling=False, temp_c=41.0, cpu_freq_ratio=None)
    assert thermal.zone_state(thermal.Zone("106000", (("critical", "105000"),))) == (106.0, "critical")
    # a zone without a throttling trip gives a temperature but no verdict
    assert thermal.linux_thermal([thermal.Zone("50000")], []) == Thermal(temp_c=50.0)
    assert thermal.linux_thermal([], []) is None


def test_pmset_therm() -> None:
    assert thermal.parse_pmset_therm(text("pmset-therm-nominal.txt")) == Thermal("nominal", False)
    assert thermal.parse_pmset_therm(text("pmset-therm-throttled.txt")) == Thermal("serious", True)
    assert thermal.parse_pmset_therm("Thermal Warning Level = 3\n") == Thermal("critical", True)
    assert thermal.parse_pmset_therm("") is None


def test_battery() -> None:
    assert power.parse_pmset_batt(text("pmset-batt-battery.txt")) is True
    assert power.parse_pmset_batt(text("pmset-batt-ac.txt")) is False
    assert power.parse_pmset_batt("") is None
    assert read_linux_power(FIX / "sys-laptop") is True
    assert read_linux_power(FIX / "sys-desktop") is False
    assert power.parse_power_supply([]) is None  # a VM or container: unknown, not "on mains"
    assert power.parse_power_supply([{"type": "Battery", "status": "Charging"}]) is False


def test_owner_load_leaves_out_the_backend_and_herd() -> None:
    procs = [
        owner.Proc(1, "ollama", 350.0, 6 * 2**30),
        owner.Proc(2, "python3", 90.0, 2**30),  # herd itself
        owner.Proc(3, "Blender", 200.0, 4 * 2**30),
        owner.Proc(4, "firefox", 100.0, 2 * 2**30),
        owner.Proc(5, "ollama_llama_", 100.0, 2**30, cmdline0="ollama_llama_server"),
    ]
    who, busy_rss = owner.owner_load(procs, cpu_count=8, own_pids={2}, busy_apps=("blender", "steam"))
    assert who.cpu_percent == 37.5 and who.mem_bytes == 6 * 2**30
    assert who.busy_apps == ("blender",) and busy_rss == 4 * 2**30 and who.in_meeting is None
    # 64 GiB machine, 40 free: keep 5 % for the owner plus half of Blender's 4 GiB
    assert owner.memory_ceiling(40 * 2**30, 64 * 2**30, 4 * 2**30) == int((40 - 3.2 - 2) * 2**30)
    assert owner.memory_ceiling(2**30, 64 * 2**30, 0) == 0
    idle, _ = owner.owner_load([], cpu_count=8, own_pids=set(), busy_apps=())
    assert idle.cpu_percent == 0.0 and idle.busy_apps == ()


def test_pcm_capture_status() -> None:
    assert meeting.capture_running([text("asound-pcm-status-running.txt")])
    assert not meeting.capture_running([text("asound-pcm-status-closed.txt"), ""])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_meeting_detector_sees_a_process_holding_a_capture_device(tmp_path: Path) -> None:
    device = tmp_path / "video7"
    device.write_text("")
    devices = (str(tmp_path / "video*"), str(tmp_path / "snd" / "pcmC*D*c"))
    status_glob = str(tmp_path / "asound" / "card*" / "pcm*c" / "sub*" / "status")
    assert meeting.read_linux(devices=devices, pcm_status=status_glob) is False
    script = f"import sys; f = open({str(device)!r}); print('open', flush=True); sys.stdin.read()"
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == b"open\n"
        held = meeting.read_linux(devices=devices, pcm_status=status_glob)
        holder.stdin.close()
        holder.wait(timeout=30)
    assert held is True
    assert meeting.read_linux(devices=devices, pcm_status=status_glob) is False
    # a running capture stream counts too, with nothing held open
    status = tmp_path / "asound" / "card0" / "pcm0c" / "sub0" / "status"
    status.parent.mkdir(parents=True)
    status.write_text(text("asound-pcm-status-running.txt"))
    assert meeting.read_linux(devices=devices, pcm_status=status_glob) is True
    assert meeting.read_linux(proc=tmp_path / "no-proc") is None


async def test_sample_reads_a_fixture_machine() -> None:
    host = HostStats(cpu_count=8, mem_total=64 * 2**30, mem_available=40 * 2**30)
    probe = GuestProbe(
        sys_root=FIX / "sys-laptop", platform="linux", meeting_pause=True, meeting_reader=lambda: True
    )
    state = await probe.sample(host)
    assert state.thermal is not None and state.thermal.throttling is True
    assert state.on_battery is True
    assert state.gpu is not None and any(g.name == "AMD card0" for g in state.gpu)
    assert state.owner is not None and state.owner.in_meeting is True and state.owner.cpu_percent is not None
    assert state.memory_ceiling is not None and state.memory_ceiling <= 40 * 2**30
    quiet = await GuestProbe(sys_root=FIX / "sys-laptop", platform="linux").sample(host)
    assert quiet.owner is not None and quiet.owner.in_meeting is None  # not asked: never sent


async def test_live_sample_of_this_machine(tmp_path: Path) -> None:
    """What this machine can report: each source present gives values, each absent one gives None."""
    host = await host_stats(tmp_path)
    state = await GuestProbe().sample(host)
    sys_root = Path("/sys")
    has_zones = bool(glob.glob("/sys/class/thermal/thermal_zone*/temp"))
    has_freq = bool(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"))
    assert (state.thermal is not None) == (has_zones or has_freq)
    if has_freq:
        assert state.thermal is not None and state.thermal.cpu_freq_ratio is not None
    assert state.thermal == read_linux_thermal(sys_root) or has_freq  # frequencies move between reads
    has_gpu_tool = bool(glob.glob("/sys/class/drm/card[0-9]*/device/gpu_busy_percent")) or bool(
        shutil.which("nvidia-smi")
    )
    assert (state.gpu is not None) == has_gpu_tool
    assert state.owner is not None and state.owner.cpu_percent is not None and state.owner.mem_bytes
    assert state.memory_ceiling is not None and 0 <= state.memory_ceiling <= host.mem_available
    print("live probes:", state)

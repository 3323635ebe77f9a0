"""Test hosts as Linux network namespaces: two "machines" joined by a bridge in a third namespace, so nothing
touches the host's own network. Root and iproute2 are needed; `hosts()` cleans up whatever it created."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SUBNET = "10.213.{n}.{h}"


@dataclass(frozen=True)
class Host:
    ns: str
    ip: str

    def cmd(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *argv]


def unavailable() -> str | None:
    """Why namespaces can't be made here, or None."""
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"hp{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"'ip netns add' failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextmanager
def hosts(count: int = 2) -> Iterator[list[Host]]:
    tag = uuid.uuid4().hex[:5]
    net = int(tag, 16) % 200 + 20
    bridge_ns = f"hb{tag}"
    made: list[str] = []
    try:
        _ip("netns", "add", bridge_ns)
        made.append(bridge_ns)
        _ip("-n", bridge_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", bridge_ns, "link", "set", "br0", "up")
        result = []
        for i in range(count):
            ns = f"hh{tag}{i}"
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("link", "add", f"v{tag}{i}", "type", "veth", "peer", "name", f"p{tag}{i}")
            _ip("link", "set", f"v{tag}{i}", "netns", ns)
            _ip("link", "set", f"p{tag}{i}", "netns", bridge_ns)
            _ip("-n", bridge_ns, "link", "set", f"p{tag}{i}", "master", "br0", "up")
            ip = SUBNET.format(n=net, h=i + 1)
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", f"v{tag}{i}")
            _ip("-n", ns, "link", "set", f"v{tag}{i}", "up", "multicast", "on")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", f"v{tag}{i}")
            result.append(Host(ns, ip))
        yield result
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

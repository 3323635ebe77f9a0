"""Zero-config discovery over mDNS: the router advertises `_herd._tcp.local.` (`Advertiser`, a service in the
router's nursery) and `herd node` browses for it (`browse_router`).

zeroconf runs its own threads: every blocking call goes through `trio.to_thread`, and the browser's handler
(called on zeroconf's thread with keyword arguments) hands names into Trio with `TrioToken.run_sync_soon`.
Interfaces are always explicit: the configured IPv4 addresses, or every non-loopback IPv4 address of the host.

The TXT record carries `fleet` (the fleet id: derived from the fleet token, else `--fleet-id`, else `herd`) and
`scheme` (`https` when the router serves TLS). A browser only accepts a router of its own fleet id, so two fleets
on one LAN never mix; a record without `fleet` (an older router) counts as the default fleet.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Mapping
from typing import Any

import psutil
import trio
from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

from herd import __version__
from herd.config import SERVICE_TYPE
from herd.fleet.signing import DEFAULT_FLEET_ID

log = logging.getLogger("herd.discovery")


def default_interfaces() -> list[str]:
    """Every non-loopback IPv4 address of this host, or loopback when there is none."""
    found = [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]
    return sorted(set(found)) or ["127.0.0.1"]


def _open(interfaces: list[str]) -> Zeroconf:
    return Zeroconf(interfaces=list(interfaces), ip_version=IPVersion.V4Only)


class Advertiser:
    """Service: announces the router on the given interfaces until cancelled, then says goodbye."""

    def __init__(
        self,
        port: int,
        interfaces: list[str],
        instance: str | None = None,
        fleet_id: str = DEFAULT_FLEET_ID,
        scheme: str = "http",
    ) -> None:
        self.port = port
        self.interfaces = interfaces
        self.instance = instance or f"herd-{socket.gethostname()}-{port}"
        self.info = ServiceInfo(
            SERVICE_TYPE,
            f"{self.instance}.{SERVICE_TYPE}",
            port=port,
            properties={"version": __version__, "path": "/", "fleet": fleet_id, "scheme": scheme},
            parsed_addresses=list(interfaces),
            server=f"{self.instance}.local.",
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        zc = await trio.to_thread.run_sync(_open, self.interfaces)
        try:
            await trio.to_thread.run_sync(lambda: zc.register_service(self.info, allow_name_change=True))
            log.info("advertising %s on %s port %d", SERVICE_TYPE, ", ".join(self.interfaces), self.port)
            task_status.started()
            await trio.sleep_forever()
        finally:
            with trio.move_on_after(3) as scope:
                scope.shield = True
                await trio.to_thread.run_sync(_goodbye, zc, self.info, abandon_on_cancel=True)


def _goodbye(zc: Zeroconf, info: ServiceInfo) -> None:
    try:
        zc.unregister_service(info)
    finally:
        zc.close()


def router_url(
    address: str, port: int, properties: Mapping[bytes, bytes | None], fleet_id: str
) -> str | None:
    """The URL of an advertised router when it belongs to fleet `fleet_id`, else None (pure)."""
    advertised = (properties.get(b"fleet") or DEFAULT_FLEET_ID.encode()).decode("utf-8", "replace")
    if advertised != fleet_id:
        return None
    scheme = "https" if properties.get(b"scheme") == b"https" else "http"
    return f"{scheme}://{address}:{port}"


def _resolve(zc: Zeroconf, name: str, fleet_id: str) -> str | None:
    info = zc.get_service_info(SERVICE_TYPE, name, timeout=3000)
    if info is None or not info.port:
        return None
    addresses = info.parsed_addresses(IPVersion.V4Only)
    if not addresses:
        return None
    url = router_url(addresses[0], info.port, info.properties, fleet_id)
    if url is None:
        log.info("ignoring router %s: another fleet", name)
    return url


async def browse_router(interfaces: list[str], fleet_id: str = DEFAULT_FLEET_ID) -> str | None:
    """Browse for a herd router of fleet `fleet_id` and return its URL; waits until one is found (the caller
    bounds the time)."""
    zc = await trio.to_thread.run_sync(_open, interfaces)
    token = trio.lowlevel.current_trio_token()
    send, receive = trio.open_memory_channel[str](16)

    def on_change(**kw: Any) -> None:  # zeroconf's thread; keyword arguments
        if kw.get("state_change") in (ServiceStateChange.Added, ServiceStateChange.Updated):
            name = kw["name"]

            def deliver() -> None:
                with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
                    send.send_nowait(name)

            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(deliver)

    browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
    try:
        async with receive:
            async for name in receive:
                url = await trio.to_thread.run_sync(_resolve, zc, name, fleet_id, abandon_on_cancel=True)
                if url is not None:
                    log.info("found router %s (%s)", url, name)
                    return url
        return None
    finally:
        send.close()
        with trio.move_on_after(3) as scope:
            scope.shield = True
            await trio.to_thread.run_sync(_stop_browser, browser, zc, abandon_on_cancel=True)


def _stop_browser(browser: ServiceBrowser, zc: Zeroconf) -> None:
    browser.cancel()
    zc.close()

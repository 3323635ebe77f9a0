"""mDNS discovery: the router's advertisement is found by a browser on the same interface (loopback)."""

from __future__ import annotations

import trio

from herd.fleet.discovery import Advertiser, browse_router, default_interfaces


async def test_browse_finds_the_advertised_router() -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(Advertiser(23456, ["127.0.0.1"], instance="herd-test-23456").run)
        with trio.fail_after(20):  # hang guard only
            url = await browse_router(["127.0.0.1"])
        assert url == "http://127.0.0.1:23456"
        nursery.cancel_scope.cancel()


def test_default_interfaces_are_ipv4_and_never_empty() -> None:
    interfaces = default_interfaces()
    assert interfaces and all(ip.count(".") == 3 for ip in interfaces)

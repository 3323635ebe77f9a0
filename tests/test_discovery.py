"""mDNS discovery: the router's advertisement is found by a browser on the same interface (loopback)."""

from __future__ import annotations

import logging

import pytest
import trio

from herd.fleet.discovery import Advertiser, browse_router, default_interfaces, router_url


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


def test_router_url_filters_on_fleet_id_and_reads_the_scheme() -> None:
    props = {b"fleet": b"abc123", b"scheme": b"https", b"version": b"0.1.0"}
    assert router_url("10.0.0.2", 11435, props, "abc123") == "https://10.0.0.2:11435"
    assert router_url("10.0.0.2", 11435, props, "herd") is None
    assert router_url("10.0.0.2", 11435, {b"version": b"0.0.9"}, "herd") == "http://10.0.0.2:11435"
    assert router_url("10.0.0.2", 11435, {b"version": b"0.0.9"}, "abc123") is None


async def test_browse_skips_another_fleets_router(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "herd.discovery")
    found: list[str | None] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(
            Advertiser(23457, ["127.0.0.1"], instance="herd-test-a-23457", fleet_id="fleet-a").run
        )

        async def browse() -> None:
            found.append(await browse_router(["127.0.0.1"], "fleet-b"))

        nursery.start_soon(browse)
        with trio.fail_after(20):  # hang guard only: wait until fleet-a's router was seen and skipped
            while not any("another fleet" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert found == []
        await nursery.start(
            Advertiser(
                23458, ["127.0.0.1"], instance="herd-test-b-23458", fleet_id="fleet-b", scheme="https"
            ).run
        )
        with trio.fail_after(20):
            while not found:  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert found == ["https://127.0.0.1:23458"]
        nursery.cancel_scope.cancel()

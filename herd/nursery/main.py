"""`herd run` as a process: the composition root (`herd.nursery.router.Router`) plus the duties enabled in config
(mDNS advertiser, the local node, the ready announcement), run until SIGINT/SIGTERM. Called by `herd.cli`."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import trio

from herd.config import RouterConfig
from herd.fleet.discovery import Advertiser, default_interfaces
from herd.node.local import LocalNode
from herd.node.probes.sample import GuestProbe
from herd.nursery.announce import Announcer
from herd.nursery.router import DutyFactory, Router
from herd.services import RouterServices
from herd.web.connections import raise_open_files_limit

log = logging.getLogger("herd.router")


async def run_until_signalled(service: Any, stop: Callable[[], None]) -> None:
    """Run `service` until it ends or SIGINT/SIGTERM; the first signal calls `stop`, a second one cancels."""
    import signal

    async with trio.open_nursery() as nursery:

        async def watch(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                task_status.started()
                count = 0
                async for _ in signals:
                    count += 1
                    if count == 1:
                        log.info("shutting down (signal again to force)")
                        stop()
                    else:
                        nursery.cancel_scope.cancel()

        await nursery.start(watch)
        await service.run()
        nursery.cancel_scope.cancel()


def _print(text: str) -> None:
    print(text, flush=True)


async def main_router(cfg: RouterConfig, write: Callable[[str], None] = _print) -> None:
    """`herd run`: the router plus the duties enabled in config, until a signal; says so once it is ready."""
    raise_open_files_limit()  # before the connection budget is derived from it
    duties = optional_duties(cfg)
    duties.append(lambda svc, urls: Announcer(cfg, svc, urls, write))
    router = Router(cfg, duties=duties)
    # The start-up heap (modules, the app, the components) lives as long as the process: move it out of the
    # cyclic collector's sight, so its occasional full collections walk only what requests create (a full
    # collection over the whole heap cost ~13 µs per request, amortised, on the proxy bench).
    gc.collect()
    gc.freeze()
    await run_until_signalled(router, router.stop)


def optional_duties(cfg: RouterConfig) -> list[DutyFactory]:
    """The duties `herd run` adds once bound: the mDNS advertiser and the local node, each when enabled."""
    duties: list[DutyFactory] = []
    if cfg.mdns:

        def advertiser(_: RouterServices, urls: list[str]) -> Advertiser:
            port = int(urls[0].rsplit(":", 1)[1])
            return Advertiser(
                port,
                list(cfg.mdns_interfaces) or default_interfaces(),
                fleet_id=cfg.trust.fleet_id,
                scheme=cfg.trust.scheme,
            )

        duties.append(advertiser)
    if cfg.local_node:
        # the router's machine is often someone's desktop: the same good-guest report as `herd node`
        duties.append(
            lambda svc, _urls: LocalNode(cfg, svc.registry.ingest, guest_sample=GuestProbe().sample)
        )
    return duties

"""The last duty `herd run` starts: prints the ready block (`herd.banner.ready_block`) once, on stdout, so the
console says the router is up and where even at the default (quiet) log level. Built by
`herd.nursery.main.main_router` with the services and the bound URLs, like the other optional duties; it returns
once it has printed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import trio

from herd import __version__
from herd.banner import reachable_urls, ready_block
from herd.cli_trust import TOKEN_FILE
from herd.config import RouterConfig
from herd.fleet.discovery import default_interfaces
from herd.services import RouterServices


class Announcer:
    def __init__(
        self,
        cfg: RouterConfig,
        services: RouterServices,
        bound: Sequence[str],
        write: Callable[[str], None],
        lan: Callable[[], list[str]] = default_interfaces,
    ) -> None:
        self.cfg, self.services, self.bound, self.write, self.lan = cfg, services, bound, write, lan

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        addresses = await trio.to_thread.run_sync(self.lan)  # psutil walks the interfaces
        urls = reachable_urls(self.bound, self.cfg.host, list(self.cfg.mdns_interfaces) or addresses)
        nodes = sorted(self.services.registry.snapshot.nodes)
        trust = self.cfg.trust
        token_file = None
        if trust.token:  # where the operator finds the token (the auto one lives in the data dir)
            auto = self.cfg.data_dir / TOKEN_FILE
            token_file = str(auto) if await trio.to_thread.run_sync(auto.exists) else ""
        block = ready_block(
            urls,
            mdns=self.cfg.mdns,
            nodes=nodes,
            version=__version__,
            token_file=token_file,
            tls=bool(trust.certfile),
        )
        self.write(block)
        task_status.started()

"""The node agent's heartbeat loop: probe the backend and the host, send a heartbeat, sleep, repeat.

It keeps reporting while the backend is down (backend_up false, no models) and retries a router that is down
with exponential backoff, logging once per change of state; while backing off it asks the router a cheap
question every `router_poll` seconds and sends a heartbeat at once when it answers again (a restarted router
has its fleet back within about a second, not after the agents' backoff). Where heartbeats go is a `HeartbeatSink`: over HTTP
to a router found by URL or mDNS (`herd node`), or straight into the registry of the router it runs inside
(`herd run`'s local node). On shutdown, `drain()` sends one last heartbeat with `draining: true`.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio

from herd.fleet.guest import GuestState
from herd.fleet.heartbeat import OLLAMA, OPENAI, Heartbeat, HostStats
from herd.fleet.signing import sign
from herd.node.collect import BackendProbe, build_heartbeat, host_stats, probe_ollama
from herd.node.guest import GuestReporter
from herd.node.media import MediaScout
from herd.node.openai_probe import OpenAIProber

log = logging.getLogger("herd.node")

LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


class SinkError(Exception):
    """The heartbeat could not be delivered: the router is unreachable, or (`answered`) it refused it."""

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


class HeartbeatSink(Protocol):
    async def ready(self) -> None:
        """Make sure there is somewhere to send to (e.g. find the router); raise `SinkError` if not."""

    async def send(self, hb: Heartbeat) -> None: ...

    def describe(self) -> str: ...

    async def answers(self) -> bool:
        """A cheap check that the router answers right now (no heartbeat built or sent)."""


def route_address(router_host: str) -> str | None:
    """This machine's address on the route to `router_host` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in router_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((router_host, 9))
            return str(s.getsockname()[0]).split("%", 1)[0]
    except OSError:
        return None


def advertised_url(backend_url: str, router_url: str | None, override: str | None) -> str:
    """The backend URL as the router should reach it: a loopback host becomes this machine's address on the
    route to the router, unless the router itself is on loopback."""
    if override:
        return override.rstrip("/")
    parts = urlsplit(backend_url)
    host = parts.hostname or ""
    if host not in LOOPBACK or router_url is None:
        return backend_url.rstrip("/")
    router_host = urlsplit(router_url).hostname or ""
    if router_host in LOOPBACK:
        return backend_url.rstrip("/")
    addr = route_address(router_host)
    if addr is None:
        return backend_url.rstrip("/")
    host = f"[{addr}]" if ":" in addr else addr  # the router checks it is the heartbeat's source address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")


class HttpSink:
    """POSTs heartbeats to `{router}/heartbeat`; the router URL comes from `locate` (fixed, or mDNS). With a
    fleet token each heartbeat is signed (`herd.fleet.signing`)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        locate: Callable[[], Awaitable[str | None]],
        fleet_token: str | None = None,
    ) -> None:
        self.client = client
        self.locate = locate
        self.router_url: str | None = None
        self.fleet_token = fleet_token

    def describe(self) -> str:
        return self.router_url or "router (not found yet)"

    async def ready(self) -> None:
        if self.router_url is None:
            self.router_url = await self.locate()
            if self.router_url is None:
                raise SinkError("no router found over mDNS")

    async def answers(self) -> bool:
        try:
            await self.ready()
            assert self.router_url is not None
            await self.client.get(self.router_url + "/api/version")
        except (SinkError, httpx.HTTPError):
            self.router_url = None
            return False
        return True  # any HTTP answer: the router is listening again

    async def send(self, hb: Heartbeat) -> None:
        await self.ready()
        assert self.router_url is not None
        url = self.router_url + "/heartbeat"
        body = json.dumps(hb.to_json()).encode()
        headers = {"content-type": "application/json"}
        if self.fleet_token is not None:
            headers.update(sign(self.fleet_token, "POST", urlsplit(url).path, body, time.time()))
        try:
            resp = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self.router_url = None  # look it up again next time (mDNS: it may have moved)
            raise SinkError(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise SinkError(f"router answered {resp.status_code}: {resp.text[:200]}", answered=True)


def _names(hb: Heartbeat | None) -> list[str]:
    return [str(m.get("name")) for m in hb.models] if hb is not None else []


class Agent:
    """Service: one heartbeat every `interval` seconds until cancelled."""

    def __init__(
        self,
        *,
        node_id: str,
        backend_url: str,
        data_dir: Path,
        client: httpx.AsyncClient,
        sink: HeartbeatSink,
        interval: float = 5.0,
        backoff_max: float = 30.0,
        probe_timeout: float = 3.0,
        advertise: Callable[[], str] | None = None,
        require_backend: bool = False,
        parallel: int = 0,
        drain_timeout: float = 3.0,
        host_probe: Callable[[Path], Awaitable[HostStats]] = host_stats,
        backend: str = OLLAMA,
        media: MediaScout | None = None,
        guest: GuestReporter | None = None,
        on_report: Callable[[str, Heartbeat], None] | None = None,
        signed: bool = False,
        router_poll: float = 1.0,
    ) -> None:
        self.node_id = node_id
        self.backend_url = backend_url
        self.data_dir = data_dir
        self.client = client
        self.sink = sink
        self.interval = interval
        self.backoff_max = backoff_max
        self.probe_timeout = probe_timeout
        self.advertise = advertise or (lambda: backend_url)
        self.require_backend = require_backend
        self.parallel = parallel
        self.drain_timeout = drain_timeout
        self.host_probe = host_probe
        self.backend = backend
        self.media = media
        self.guest = guest
        self.on_report = on_report  # told (router, heartbeat) on joining and when the models reported change
        self.signed = signed  # the backend URL is the agent's LAN proxy (herd.node.lanproxy)
        self.router_poll = router_poll
        self._openai = OpenAIProber(client, backend_url) if backend == OPENAI else None
        self.sent = 0
        self.last: Heartbeat | None = None
        self._backend_seen = False
        self._backend_up: bool | None = None
        self._router_ok: bool | None = None
        self._refused = False  # the router answered but refused the heartbeat: back off, don't poll

    async def beat(self) -> Heartbeat:
        probe = BackendProbe(up=False, error=f"no answer within {self.probe_timeout:g} s")
        with trio.move_on_after(self.probe_timeout):
            if self._openai is not None:
                probe = await self._openai.probe()
            else:
                probe = await probe_ollama(self.client, self.backend_url)
        if probe.up != self._backend_up:
            if probe.up:
                log.info(
                    "backend %s is up (version %s, %d models)",
                    self.backend_url,
                    probe.version,
                    len(probe.models),
                )
            elif self.require_backend and not self._backend_seen:  # the router's optional local Ollama
                log.info(
                    "no Ollama answers at %s (optional: it joins as a node once it does)", self.backend_url
                )
            else:
                log.warning("backend %s is down: %s", self.backend_url, probe.error)
            self._backend_up = probe.up
        self._backend_seen |= probe.up
        host = await self.host_probe(self.data_dir)
        media: tuple[dict[str, Any], ...] = ()
        if self.media is not None:
            with trio.move_on_after(self.probe_timeout):
                media = await self.media.scan(probe, self.advertise())
        guest = await self.guest.report(host) if self.guest is not None else GuestState()
        hb = build_heartbeat(
            node_id=self.node_id,
            backend_url=self.advertise(),
            probe=probe,
            host=host,
            interval=self.interval,
            parallel=self.parallel or int(probe.extra.get("parallel", 0)),
            backend=self.backend,
            media=media,
            guest=guest,
        )
        return replace(hb, signed=True) if self.signed else hb

    async def _deliver(self, hb: Heartbeat | None) -> bool:
        """Send `hb`, or (None) the heartbeat of right now once the sink is ready: the backend URL the router
        should use depends on where the router is."""
        try:
            if hb is None:
                await self.sink.ready()
                hb = await self.beat()
                if self.require_backend and not self._backend_seen:
                    return True  # a local node joins only once its backend has answered
            await self.sink.send(hb)
        except SinkError as exc:
            self._refused = exc.answered
            if self._router_ok is not False:
                log.warning("cannot reach %s: %s (retrying with backoff)", self.sink.describe(), exc)
            self._router_ok = False
            return False
        joined = self._router_ok is not True
        if joined:
            log.info("reporting to %s as %s", self.sink.describe(), self.node_id)
        if self.on_report is not None and (joined or _names(hb) != _names(self.last)):
            self.on_report(self.sink.describe(), hb)
        self._router_ok = True
        self.sent += 1
        self.last = hb
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        backoff = self.interval
        while True:
            if await self._deliver(None):
                backoff = self.interval
                await trio.sleep(self.interval)
            else:
                await self._back_off(backoff)
                backoff = min(backoff * 2, self.backoff_max)

    async def _back_off(self, backoff: float) -> None:
        """Wait out `backoff`, or less: until a cheap poll finds the router answering again."""
        if self._refused:
            await trio.sleep(backoff)  # it answers already; polling would only resend what it refuses
            return
        with trio.move_on_after(backoff):
            while True:
                await trio.sleep(min(self.router_poll, backoff))
                with trio.move_on_after(self.router_poll):
                    if await self.sink.answers():
                        return

    async def drain(self) -> bool:
        """Send one last heartbeat with `draining: true` (shielded, at most `drain_timeout` seconds)."""
        if self.last is None:
            return False
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self.drain_timeout
            delivered = await self._deliver(replace(self.last, draining=True))
        if delivered:
            log.info("sent the draining heartbeat")
        return delivered

"""Fair share between apps (pure): who among the requests waiting for a model goes next.

The app of a request is its first tag (the guard puts the caller's API key name first, so a keyed caller
cannot pose as another app), else the name of its API key (`API_KEY_SCOPE` in the ASGI scope, set
by whoever checks keys), else the client's address: `app_of`. Waiting requests are served round-robin across
apps, weighted (`--app-weight NAME=W`, default 1: an app of weight 2 gets two turns for every one of an app of
weight 1), FIFO within an app except that `X-Herd-Priority: high` goes before `normal` before `low` of the
same app. `FairOrder` is the bookkeeping: `herd.routing.queue.HoldingQueue` keeps one per model, and the
simulator (`herd.sim.run`) uses the same class. Formulas: `docs/routing.md`, "Fair share".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from herd.errors import BadRequest
from herd.reqscope import APP_KEY

API_KEY_SCOPE = APP_KEY  # the ASGI scope key the guard sets to the caller's API key name
PRIORITIES = {"high": 0, "normal": 1, "low": 2}

W = TypeVar("W")


def app_of(tags: tuple[str, ...], scope: Mapping[str, Any]) -> str:
    """The request's app: first tag, else API key name, else client address ("-" when unknown)."""
    if tags:
        return tags[0]
    key = scope.get(API_KEY_SCOPE)
    if isinstance(key, str) and key:
        return key
    client = scope.get("client")
    return str(client[0]) if client else "-"


def priority_of(header: str | None) -> int:
    """`X-Herd-Priority` as a rank (0 high, 1 normal, 2 low); anything else is a 400."""
    if header is None or not header.strip():
        return PRIORITIES["normal"]
    rank = PRIORITIES.get(header.strip().lower())
    if rank is None:
        raise BadRequest("X-Herd-Priority must be high, normal or low", param="X-Herd-Priority")
    return rank


def header_of(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class FairOrder(Generic[W]):
    """Waiters of one model grouped by app: start-time fair queueing. Each waiting app has a virtual time (its
    next start tag), advanced by 1 / weight at each of its turns; the next waiter is the best (priority,
    arrival) of the app with the least virtual time (ties: the app waiting longest). An app that starts
    waiting joins at the start tag of the last turn served, so it goes next, and idling earns no credit (an
    app that stops waiting is forgotten)."""

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self.weights = dict(weights or {})
        self._apps: dict[str, list[tuple[int, int, W]]] = {}  # app -> [(priority, seq, waiter)], kept sorted
        self._vtime: dict[str, float] = {}
        self._virtual = 0.0  # start tag of the last turn served
        self._seq = 0

    def __len__(self) -> int:
        return sum(len(v) for v in self._apps.values())

    def add(self, waiter: W, app: str, priority: int = 1) -> None:
        queue = self._apps.get(app)
        if queue is None:
            self._vtime[app] = self._virtual
            queue = self._apps[app] = []
        self._seq += 1
        queue.append((priority, self._seq, waiter))
        queue.sort(key=lambda t: (t[0], t[1]))

    def head(self) -> W | None:
        """The waiter whose turn it is."""
        if not self._apps:
            return None
        app = min(self._apps, key=lambda a: (self._vtime[a], min(e[1] for e in self._apps[a])))
        return self._apps[app][0][2]

    def remove(self, waiter: W, *, served: bool) -> None:
        """Take `waiter` out; `served` counts a turn for its app."""
        for app, queue in self._apps.items():
            for i, entry in enumerate(queue):
                if entry[2] is waiter:
                    del queue[i]
                    if served:
                        self._virtual = max(self._virtual, self._vtime[app])
                        self._vtime[app] += 1.0 / self.weights.get(app, 1.0)
                    if not queue:
                        del self._apps[app]
                        del self._vtime[app]  # rejoins at the floor: no credit, no debt, bounded memory
                    return

    def waiters(self) -> list[W]:
        return [entry[2] for queue in self._apps.values() for entry in queue]

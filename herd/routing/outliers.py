"""Outlier ejection (pure state, time passed in): a node whose recent attempts fail well above the rest of the
fleet is taken out of rotation for a backoff that doubles while it keeps failing.

The breaker (`herd.routing.breaker`) answers "can I reach it?"; this answers "does it answer well?". Fed by
`herd.routing.proxy`: every attempt that got an answer ends as a success (a complete response) or a failure (a
5xx other than 503 busy, a protocol error, a stream cut or silent, an error line from the backend). Connection
failures are the breaker's and busy/404/429/caller faults are neutral. Ranking asks `ejected`.

Rules (`docs/routing.md`, "Outlier ejection"):
- each node keeps its last `window` outcomes younger than `max_age` seconds;
- it is ejected when it has at least `min_failures` failures there and its failure rate exceeds
  `max(min_rate, fleet_factor * the rate of every other node's window together)`;
- ejection lasts `base_ejection * 2^(level-1)` seconds, at most `max_ejection`; `level` counts ejections
  since the node last served a full window without one;
- when the time is up one real request probes it (others keep avoiding it): success puts it back in
  rotation, failure ejects it again one level up;
- the proxy never lets ejection remove the last node that could serve a request (see `Proxy.ranked`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OutlierConfig:
    window: int = 20  # outcomes kept per node
    max_age: float = 60.0  # s an outcome counts
    min_failures: int = 3
    min_rate: float = 0.2
    fleet_factor: float = 2.0
    base_ejection: float = 10.0  # s
    max_ejection: float = 300.0  # s


@dataclass(frozen=True, slots=True)
class NodeOutliers:
    outcomes: tuple[tuple[float, bool], ...] = ()  # (time, failed), oldest first
    ejected_at: float | None = None
    until: float | None = None  # ejected until then (None: in rotation)
    level: int = 0  # ejections since the last clean window
    probing: bool = False
    served: int = 0  # outcomes since coming back (a full clean window forgives the level)


HEALTHY = NodeOutliers()


def recent(state: NodeOutliers, now: float, cfg: OutlierConfig) -> tuple[tuple[float, bool], ...]:
    """The outcomes at most `max_age` old, the last `window` of them (outcomes are in time order: the old ones
    are a prefix)."""
    outcomes = state.outcomes
    start, n = 0, len(outcomes)
    while start < n and now - outcomes[start][0] > cfg.max_age:
        start += 1
    return outcomes[start:][-cfg.window :]


def failure_rate(outcomes: Iterable[tuple[float, bool]]) -> tuple[int, int]:
    """(failures, attempts)."""
    n = fails = 0
    for _, failed in outcomes:
        n += 1
        fails += failed
    return fails, n


def threshold(others: tuple[int, int], cfg: OutlierConfig) -> float:
    """The failure rate above which a node is an outlier, given the other nodes' (failures, attempts)."""
    fleet = others[0] / others[1] if others[1] else 0.0
    return max(cfg.min_rate, cfg.fleet_factor * fleet)


def is_outlier(mine: tuple[int, int], others: tuple[int, int], cfg: OutlierConfig) -> bool:
    fails, n = mine
    return fails >= cfg.min_failures and fails / n > threshold(others, cfg)


def eject(state: NodeOutliers, now: float, cfg: OutlierConfig) -> NodeOutliers:
    level = state.level + 1
    backoff = min(cfg.max_ejection, cfg.base_ejection * 2 ** (level - 1))
    return NodeOutliers((), ejected_at=now, until=now + backoff, level=level)


def is_ejected(state: NodeOutliers, now: float) -> bool:
    """Out of rotation: inside its ejection, or being probed by one request."""
    return state.until is not None and (now < state.until or state.probing)


def on_attempt(state: NodeOutliers, now: float) -> NodeOutliers:
    """A request goes to the node: an ejection that is over turns into a probe."""
    if state.until is not None and now >= state.until and not state.probing:
        return NodeOutliers(state.outcomes, state.ejected_at, state.until, state.level, True, state.served)
    return state


def on_outcome(
    state: NodeOutliers, failed: bool, now: float, others: tuple[int, int], cfg: OutlierConfig
) -> NodeOutliers:
    """Record one outcome; `others` is the (failures, attempts) of every other node's window."""
    if state.probing:
        if failed:
            return eject(state, now, cfg)
        return NodeOutliers(((now, False),), level=state.level, served=1)
    if state.until is not None:
        return state  # a straggler that started before the ejection: the ejection already counted
    outcomes = (*recent(state, now, cfg), (now, failed))[-cfg.window :]
    if failed and is_outlier(failure_rate(outcomes), others, cfg):
        return eject(state, now, cfg)
    served = state.served + 1
    level = 0 if served >= cfg.window else state.level
    return NodeOutliers(outcomes, level=level, served=served)


class Outliers:
    """The mutable holder: one `NodeOutliers` per node id that was ever tried (absent = nothing known)."""

    def __init__(self, cfg: OutlierConfig | None = None) -> None:
        self.cfg = cfg or OutlierConfig()
        self._states: dict[str, NodeOutliers] = {}
        self._out: set[str] = (
            set()
        )  # nodes with an ejection not yet ended by a probe (asked on every ranking)

    def ejected(self, now: float) -> frozenset[str]:
        return frozenset(n for n in self._out if is_ejected(self._states[n], now))

    def _set(self, node_id: str, state: NodeOutliers) -> None:
        self._states[node_id] = state
        if state.until is None:
            self._out.discard(node_id)
        else:
            self._out.add(node_id)

    def state(self, node_id: str) -> NodeOutliers:
        return self._states.get(node_id, HEALTHY)

    def attempt(self, node_id: str, now: float) -> None:
        state = self._states.get(node_id)
        if state is not None:
            self._set(node_id, on_attempt(state, now))

    def abandon(self, node_id: str) -> None:
        """A probe ended without a verdict (the client left): the next request probes instead."""
        s = self._states.get(node_id)
        if s is not None and s.probing:
            self._set(node_id, NodeOutliers(s.outcomes, s.ejected_at, s.until, s.level, False, s.served))

    def outcome(self, node_id: str, failed: bool, now: float) -> None:
        state = self._states.get(node_id, HEALTHY)
        others = (0, 0)
        if failed and not state.probing:  # only a failure can eject: sum the rest of the fleet then
            fails = n = 0
            for other, s in self._states.items():
                if other != node_id:
                    f, k = failure_rate(recent(s, now, self.cfg))
                    fails, n = fails + f, n + k
            others = (fails, n)
        self._set(node_id, on_outcome(state, failed, now, others, self.cfg))

    def forget(self, node_id: str) -> None:
        self._states.pop(node_id, None)
        self._out.discard(node_id)

    def view(self, node_id: str, now: float) -> dict[str, object]:
        """What `/fleet/status` shows for the node."""
        s = self.state(node_id)
        fails, n = failure_rate(recent(s, now, self.cfg))
        return {
            "ejected": is_ejected(s, now),
            "ejected_for_s": round(max(0.0, s.until - now), 3) if s.until is not None else None,
            "ejection_level": s.level,
            "probing": s.probing,
            "recent_failures": fails,
            "recent_attempts": n,
        }

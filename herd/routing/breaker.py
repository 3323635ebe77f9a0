"""Per-node circuit breakers (pure state, time passed in): after `threshold` consecutive connection failures a
node's breaker opens and the node is skipped; after `cooldown` seconds it half-opens and lets one request probe
it; a success closes it, a failure opens it again. `herd.routing.proxy` reports outcomes; ranking asks `allows`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BreakerState:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


CLOSED = BreakerState()


def allows(state: BreakerState, now: float, cooldown: float) -> bool:
    if state.opened_at is None:
        return True
    return not state.probing and now - state.opened_at >= cooldown


def on_attempt(state: BreakerState, now: float, cooldown: float) -> BreakerState:
    """A request is about to go to the node: an open breaker past its cooldown becomes a half-open probe."""
    if state.opened_at is not None and now - state.opened_at >= cooldown:
        return BreakerState(state.failures, state.opened_at, probing=True)
    return state


def on_failure(state: BreakerState, now: float, threshold: int) -> BreakerState:
    failures = state.failures + 1
    if state.probing or failures >= threshold:
        return BreakerState(failures, opened_at=now, probing=False)
    return BreakerState(failures, state.opened_at, state.probing)


class Breakers:
    """The mutable holder: one `BreakerState` per node id (absent = closed)."""

    def __init__(self, threshold: int = 3, cooldown: float = 15.0) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._states: dict[str, BreakerState] = {}

    def allows(self, node_id: str, now: float) -> bool:
        return allows(self._states.get(node_id, CLOSED), now, self.cooldown)

    def open_nodes(self, now: float) -> frozenset[str]:
        return frozenset(n for n, s in self._states.items() if not allows(s, now, self.cooldown))

    def attempt(self, node_id: str, now: float) -> None:
        state = self._states.get(node_id)
        if state is not None:
            self._states[node_id] = on_attempt(state, now, self.cooldown)

    def abandon(self, node_id: str) -> None:
        """A probe ended without a verdict (the client left): let the next request probe instead."""
        state = self._states.get(node_id)
        if state is not None and state.probing:
            self._states[node_id] = BreakerState(state.failures, state.opened_at, probing=False)

    def success(self, node_id: str) -> None:
        self._states.pop(node_id, None)

    def failure(self, node_id: str, now: float) -> None:
        self._states[node_id] = on_failure(self._states.get(node_id, CLOSED), now, self.threshold)

    def state(self, node_id: str) -> BreakerState:
        return self._states.get(node_id, CLOSED)

"""Per-key limits: requests per minute (a sliding window over the last 60 s) and requests running at once.

Plain bookkeeping over a clock value the caller passes in (`trio.current_time()` in the guard), so it is
tested without waiting. Books are keyed by the key's name: a reloaded keys file keeps the counts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from herd.errors import RateLimited

WINDOW = 60.0


class RateBook:
    """Sliding-window request counts per key name."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self.times: dict[str, deque[float]] = {}

    def admit(self, name: str, rpm: int | None, now: float) -> float | None:
        """Count one request now, or return the seconds until one more fits (and count nothing)."""
        if rpm is None:
            return None
        times = self.times.setdefault(name, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= rpm:
            return times[len(times) - rpm] + self.window - now
        times.append(now)
        return None


class InFlight:
    """Requests running per key name; `hold` is the scope of one of them."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}

    def full(self, name: str, limit: int | None) -> bool:
        return limit is not None and self.running.get(name, 0) >= limit

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        self.running[name] = self.running.get(name, 0) + 1
        try:
            yield
        finally:
            self.running[name] -= 1
            if not self.running[name]:
                del self.running[name]


def over_concurrent(name: str, limit: int) -> RateLimited:
    return RateLimited(
        f"API key '{name}' already has {limit} request(s) running (its concurrent limit)", retry_after=1
    )


def over_rpm(name: str, rpm: int, retry_after: float) -> RateLimited:
    return RateLimited(
        f"API key '{name}' is over its limit of {rpm} requests per minute", retry_after=max(1.0, retry_after)
    )

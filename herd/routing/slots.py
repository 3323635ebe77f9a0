"""Capacity as a scope: a request holds a slot on (node, model) with `async with` for its whole stream.

The walking skeleton only counts (no limit yet); because the count lives in a context manager, a disconnect,
error or cancel always gives the slot back. `select.rank` reads `in_flight` to prefer idle nodes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager


class Slots:
    def __init__(self) -> None:
        self._in_flight: dict[tuple[str, str], int] = {}

    @property
    def in_flight(self) -> Mapping[tuple[str, str], int]:
        return self._in_flight

    def total(self) -> int:
        return sum(self._in_flight.values())

    @asynccontextmanager
    async def acquire(self, node_id: str, model: str) -> AsyncIterator[None]:
        key = (node_id, model)
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        try:
            yield
        finally:
            left = self._in_flight[key] - 1
            if left:
                self._in_flight[key] = left
            else:
                del self._in_flight[key]

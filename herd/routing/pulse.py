"""A broadcast "something changed" signal: fired when a slot frees or a new fleet snapshot is swapped in.

The holding queue's waiters sleep on it and re-decide when it fires; the rebalancer fires it on a timer so
waiting requests are re-scored even when nothing else happens.
"""

from __future__ import annotations

import trio


class Pulse:
    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = trio.Event()

    def fire(self) -> None:
        # every slot release fires: with nobody waiting there is nothing to wake and no new event to make
        if self._event.statistics().tasks_waiting:
            self._event.set()
            self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()

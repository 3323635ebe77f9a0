"""What each attempt on a node tells the circuit breaker (`herd.routing.breaker`) and outlier ejection
(`herd.routing.outliers`): `herd.routing.proxy` reports an attempt's start, how it ended before the commit point
(an answered error status, a broken connection, or no verdict when the client left), and, once a committed
response is over, how that went (`settle`)."""

from __future__ import annotations

import trio

from herd.routing.breaker import Breakers
from herd.routing.outliers import Outliers
from herd.routing.record import RequestRecord


class Verdicts:
    def __init__(self, breakers: Breakers, outliers: Outliers) -> None:
        self.breakers = breakers
        self.outliers = outliers

    def start(self, node_id: str, now: float) -> None:
        self.breakers.attempt(node_id, now)
        self.outliers.attempt(node_id, now)

    def answered(self, node_id: str, status: int) -> None:
        """The node answered with an error status before the commit point."""
        self.breakers.success(node_id)  # it answered: reachable, whatever it said
        if status >= 500 and status != 503:
            self.outliers.outcome(node_id, True, trio.current_time())
        else:
            self.outliers.abandon(node_id)  # busy, absent or refused: says nothing of its health

    def broken(self, node_id: str, kind: str) -> None:
        """The attempt failed on the wire (`UpstreamError.kind`: connect, protocol, read, idle, backend)."""
        if kind == "connect" or self.breakers.state(node_id).probing:
            self.breakers.failure(node_id, trio.current_time())
        if kind == "connect":
            self.outliers.abandon(node_id)  # unreachable is the breaker's business
        else:
            self.outliers.outcome(node_id, True, trio.current_time())

    def committed(self, node_id: str) -> None:
        self.breakers.success(node_id)

    def abandoned(self, node_id: str) -> None:
        """No verdict (cancelled before an outcome): a probe in progress is released for the next request."""
        self.breakers.abandon(node_id)
        self.outliers.abandon(node_id)

    def settle(self, node_id: str, rec: RequestRecord) -> None:
        """The committed attempt's verdict for outlier ejection, once its response is over."""
        if rec.error is not None:
            self.outliers.outcome(node_id, True, trio.current_time())  # cut, silent or an error line
        elif rec.done:
            self.outliers.outcome(node_id, False, trio.current_time())
        else:
            self.outliers.abandon(node_id)  # the client left: no verdict

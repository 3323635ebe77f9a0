"""The health engine's frame: findings, the facts every check reads, the check registry and `run_checks`.
The checks themselves (small pure functions) live in `herd.health.fleet_checks` (node state) and
`herd.health.traffic_checks` (recent requests); `GET /fleet/health` serves `run_checks`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from herd.fleet.state import FleetSnapshot
from herd.fleet.trust import Refusal
from herd.routing.record import RequestRecord


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    severity: str  # info | warning | critical
    subject: str
    title: str
    detail: str
    recommendation: str


@dataclass(frozen=True, slots=True)
class Facts:
    snap: FleetSnapshot
    recent: Sequence[RequestRecord]
    queue: dict[str, int] = field(default_factory=dict)
    broken: frozenset[str] = frozenset()
    paused: frozenset[str] = frozenset()
    in_flight: dict[str, int] = field(default_factory=dict)  # node -> requests running
    refusals: tuple[Refusal, ...] = ()  # heartbeats refused lately (herd.fleet.trust)
    ejected: frozenset[str] = frozenset()  # taken out by outlier ejection (herd.routing.outliers)


Check = Callable[[Facts], list[Finding]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


def _rate(records: Sequence[RequestRecord], pred: Callable[[RequestRecord], bool]) -> float:
    return sum(1 for r in records if pred(r)) / len(records) if records else 0.0


def run_checks(f: Facts) -> list[dict[str, str]]:
    from herd.health import fleet_checks, traffic_checks, trust_checks  # noqa: F401  (registers the checks)

    order = {"critical": 0, "warning": 1, "info": 2}
    findings = [finding for c in CHECKS for finding in c(f)]
    findings.sort(key=lambda x: (order[x.severity], x.check, x.subject))
    return [asdict(x) for x in findings]

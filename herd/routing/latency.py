"""Observed latency per (node, model): time to first token, tokens per second and duration of recent requests,
summarised as p75, plus the performance model (`herd.routing.perf`: prompt and generation rates, load time)
and each model's recent output lengths. Fed by `herd.routing.record` when a response ends; read by scoring
(time to finish, `herd.routing.estimate`) and by `GET /fleet/queue`. In memory, bounded; the store persists
observations across restarts."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass

from herd.routing.perf import Perf, Sample, update

WINDOW = 50  # most recent observations kept per (node, model)


@dataclass(frozen=True, slots=True)
class LatencyStats:
    ttft_s: float
    tokens_per_s: float
    duration_s: float
    n: int
    perf: Perf | None = None


def p75(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.75 * len(ordered)))]


def _nan(value: tuple[float, float, float]) -> bool:
    return value[0] != value[0] or value[1] != value[1] or value[2] != value[2]


class _Window:
    """One (node, model)'s recent (ttft, tokens/s, duration) observations, each value also kept in a sorted list:
    a new observation moves a few list items instead of sorting the window three times. Equal values keep their
    arrival order (insort after, evict the first), so every index reads what `sorted` of the window would give;
    while the window holds a NaN (which has no order) it is sorted as before."""

    __slots__ = ("nans", "obs", "ordered")

    def __init__(self, size: int) -> None:
        self.obs: deque[tuple[float, float, float]] = deque(maxlen=size)
        self.ordered: tuple[list[float], list[float], list[float]] | None = ([], [], [])
        self.nans = 0  # observations in the window holding a NaN

    def add(self, value: tuple[float, float, float]) -> tuple[float, float, float]:
        """Append an observation; the p75 TTFT, the 25th percentile of tokens/s and the p75 duration."""
        obs = self.obs
        evicted = obs[0] if len(obs) == obs.maxlen else None
        obs.append(value)
        if evicted is not None and _nan(evicted):
            self.nans -= 1
            evicted = None  # it was never in `ordered`
        if _nan(value):
            self.nans += 1
            self.ordered = None
        elif self.ordered is not None:
            for i, values in enumerate(self.ordered):
                if evicted is not None:
                    del values[bisect_left(values, evicted[i])]
                insort(values, value[i])
        elif not self.nans:  # the last NaN left the window
            self.ordered = (sorted(o[0] for o in obs), sorted(o[1] for o in obs), sorted(o[2] for o in obs))
        n = len(obs)
        if self.ordered is None:
            return p75([o[0] for o in obs]), sorted(o[1] for o in obs)[n // 4], p75([o[2] for o in obs])
        ttft, tps, duration = self.ordered
        i = min(n - 1, int(0.75 * n))
        return ttft[i], tps[n // 4], duration[i]


def effective_parallel(speed_by_concurrency: dict[int, float], reported: int, gain: float = 1.05) -> int:
    """The concurrency past which a node stops gaining throughput, from observed tokens/s per request at each
    concurrency: if running c requests at once delivers no more than `gain` x what c-1 did (c x speed), the
    node is serialising internally and extra slots only hide queueing inside it. Unobserved levels count as
    gaining (optimistic until measured)."""
    for c in sorted(speed_by_concurrency):  # only observed levels can stop the count (not every 2..reported)
        if 2 <= c <= reported:
            before = speed_by_concurrency.get(c - 1)
            if before is not None and c * speed_by_concurrency[c] < gain * (c - 1) * before:
                return c - 1
    return reported


class _Recent:
    """The last `size` values, also kept sorted (a new value moves a few list items instead of a sort per read):
    `median` reads what `sorted(values)[len // 2]` would. Values must be ordered (no NaN)."""

    __slots__ = ("ordered", "values")

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.ordered: list[float] = []

    def add(self, value: float) -> None:
        values = self.values
        if len(values) == values.maxlen:
            del self.ordered[bisect_left(self.ordered, values[0])]
        values.append(value)
        insort(self.ordered, value)

    def median(self) -> float:
        return self.ordered[len(self.ordered) // 2]


class LatencyBook:
    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._obs: dict[tuple[str, str], _Window] = {}
        self._stats: dict[tuple[str, str], LatencyStats] = {}
        self._speed: dict[tuple[str, str], dict[int, _Recent]] = {}
        self._speeds: dict[tuple[str, str], dict[int, float]] = {}  # their medians, kept as they change
        self._parallel: dict[tuple[str, str], dict[int, int]] = {}  # effective parallelism by reported, until
        # the pair's next speed observation
        self.version = 0  # bumped on every observation: the scorer's memo key
        self._perf: dict[tuple[str, str], Perf] = {}
        self._outputs: dict[str, _Recent] = {}  # completion tokens of recent requests per model

    def speed_by_concurrency(self, node_id: str, model: str) -> dict[int, float]:
        """Median tokens/s per request at each observed concurrency level on (node, model), kept up to date as
        observations come (scoring asks for every candidate, twice per request). Do not mutate the result."""
        return self._speeds.get((node_id, model)) or {}

    def effective_parallel(self, node_id: str, model: str, reported: int) -> int:
        """`effective_parallel` of (node, model)'s speeds, remembered until its next observation."""
        key = (node_id, model)
        memo = self._parallel.get(key)
        if memo is None:
            memo = self._parallel[key] = {}
        known = memo.get(reported)
        if known is None:
            speeds = self._speeds.get(key)
            known = memo[reported] = effective_parallel(speeds, reported) if speeds else reported
        return known

    def observe(
        self,
        node_id: str,
        model: str,
        ttft_s: float,
        tokens_per_s: float,
        duration_s: float,
        concurrency: int = 1,
        *,
        at: float = 0.0,
        prompt_tokens: int = 0,
        prompt_s: float = 0.0,
        completion_tokens: int = 0,
        gen_s: float = 0.0,
        load_s: float = 0.0,
    ) -> None:
        key = (node_id, model)
        self.version += 1
        sample = Sample(at, ttft_s, prompt_tokens, prompt_s, completion_tokens, gen_s, load_s, concurrency)
        perf = self._perf[key] = update(self._perf.get(key), sample)
        if completion_tokens > 0:
            outputs = self._outputs.get(model)
            if outputs is None:
                outputs = self._outputs[model] = _Recent(self.window)
            outputs.add(completion_tokens)
        if tokens_per_s > 0 and concurrency > 0:  # (NaN fails the test: the medians stay ordered)
            levels = self._speed.setdefault(key, {})
            level = levels.get(concurrency)
            if level is None:
                level = levels[concurrency] = _Recent(20)
            level.add(tokens_per_s)
            self._speeds.setdefault(key, {})[concurrency] = level.median()
            self._parallel.pop(key, None)
        window = self._obs.get(key)
        if window is None:
            window = self._obs[key] = _Window(self.window)
        # p75 of speed is the *slow* side: the 25th percentile of tokens/s.
        ttft, tps, duration = window.add((ttft_s, tokens_per_s, duration_s))
        self._stats[key] = LatencyStats(ttft, tps, duration, len(window.obs), perf)

    def seed(self, node_id: str, model: str, perf: Perf) -> bool:
        """Take `perf` (a benchmark's prior) for (node, model) unless live requests were observed there; the
        first live observation then mixes into it (`herd.routing.perf.update`)."""
        key = (node_id, model)
        if key in self._obs or perf.gen_rate is None:
            return False
        self.version += 1
        self._perf[key] = perf
        self._stats[key] = LatencyStats(
            ttft_s=0.0, tokens_per_s=perf.gen_rate, duration_s=0.0, n=0, perf=perf
        )
        return True

    def stats(self, node_id: str, model: str) -> LatencyStats | None:
        return self._stats.get((node_id, model))

    @property
    def all(self) -> dict[tuple[str, str], LatencyStats]:
        return self._stats

    def model_duration(self, model: str) -> float | None:
        """p75 duration across every node serving `model` (for queue wait estimates)."""
        durations = [s.duration_s for (_, m), s in self._stats.items() if m == model and s.n]
        return max(durations) if durations else None

    def model_output(self, model: str) -> int | None:
        """Median completion tokens of `model`'s recent requests on any node (None before any)."""
        recent = self._outputs.get(model)
        return int(recent.median()) if recent is not None and recent.ordered else None

"""One record per proxied request, filled along the flow and finished when the response ends.

The web handler begins it (dialect, model, client), the proxy fills in node, retries, queue wait and time to
first byte, the relay the final chunk or the error, the error handler the status of a failed request. When the
request's exit stack closes (response sent, failed, or client gone) `Recorder.finish` derives durations and
token rates, feeds the latency book, and hands the record to the sinks (trace writer, dashboard), which must not
block: they take it with a `send_nowait` on a bounded channel or drop it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from herd.reqscope import APP_KEY, request_stack
from herd.routing.fairshare import app_of, header_of, priority_of
from herd.routing.latency import LatencyBook
from herd.validate import UNKNOWN, header_value

log = logging.getLogger("herd.record")
RECORD_KEY = "herd.record"
MAX_ECHO = 2048  # X-Herd-Candidates lists every candidate; model names are bounded long before this


@dataclass(slots=True)
class RequestRecord:
    started_at: float  # wall clock, seconds since the epoch
    started: float  # trio clock
    dialect: str
    path: str
    requested_model: str
    model: str
    stream: bool
    client: str | None = None
    tags: tuple[str, ...] = ()
    node_id: str | None = None
    status: int = 200
    error: str | None = None
    retries: int = 0
    fallback: str | None = None  # "requested -> served" when another model served the request
    context_protected: bool = False
    num_ctx: int | None = None  # set by --dynamic-context (herd.routing.dyncontext); None when left alone
    concurrency: int = 1
    score: float | None = None  # the winning node's score and its per-signal breakdown
    breakdown: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, str] = field(
        default_factory=dict
    )  # X-Herd-Score / X-Herd-Candidates  # requests running on (node, model) when this one started, itself included  # a smaller num_ctx was dropped to keep the loaded context
    queue_wait: float = 0.0
    ttft: float | None = None
    duration: float | None = None
    done: bool = False
    final: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_s: float | None = None
    app: str = "-"  # fair-share app (`herd.routing.fairshare.app_of`) and X-Herd-Priority rank (0 high)
    priority: int = 1
    affinity: str | None = None  # "hit" / "miss" when the request has a prompt to cache, else None
    prefix: Any = None  # `herd.routing.affinity.Prefixes` of the prompt, remembered when the response ends
    est_finish: float | None = None  # the winner's predicted seconds to the last token
    perf_inputs: dict[str, Any] | None = None  # `timings(final)`, worked out once when the record finishes

    def response_headers(self) -> dict[str, str]:
        """What every proxied response tells the caller about its routing."""
        headers = {"X-Herd-Node": self.node_id or "", "X-Herd-Model": self.model, **self.candidates}
        if self.fallback:
            headers["X-Herd-Fallback"] = self.fallback
        if self.affinity:
            headers["X-Herd-Affinity"] = self.affinity
        return {k: header_value(v, MAX_ECHO) for k, v in headers.items()}

    def fail(self, status: int, message: str) -> None:
        self.status = status
        self.error = message


def _tokens(rec: RequestRecord) -> None:
    final = rec.final
    if not final:
        return
    rec.prompt_tokens = final.get("prompt_eval_count")
    rec.completion_tokens = final.get("eval_count")
    eval_ns = final.get("eval_duration")
    if isinstance(rec.completion_tokens, int) and isinstance(eval_ns, int) and eval_ns > 0:
        rec.tokens_per_s = rec.completion_tokens / eval_ns * 1e9


def timings(final: Mapping[str, Any]) -> dict[str, Any]:
    """The performance model's inputs from a final chunk (Ollama names; OpenAI nodes' are translated)."""

    def count(key: str) -> int:
        v = final.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0

    return {
        "prompt_tokens": count("prompt_eval_count"),
        "prompt_s": count("prompt_eval_duration") / 1e9,
        "completion_tokens": count("eval_count"),
        "gen_s": count("eval_duration") / 1e9,
        "load_s": count("load_duration") / 1e9,
    }


class Recorder:
    def __init__(
        self, latency: LatencyBook, recent: int = 200, known: Callable[[str], bool] = lambda _: True
    ) -> None:
        self.latency = latency
        self.known = known  # does the fleet serve this model? (else it is recorded as UNKNOWN)
        self.sinks: list[Callable[[RequestRecord], None]] = []
        self.recent: deque[RequestRecord] = deque(maxlen=recent)

    def begin(
        self,
        scope: Any,
        *,
        dialect: str,
        path: str,
        requested_model: str,
        model: str,
        stream: bool,
        tags: tuple[str, ...] = (),
    ) -> RequestRecord:
        client = scope.get("client")
        app = scope.get(APP_KEY)
        if isinstance(app, str):  # the caller's API key names its app: first among the tags
            tags = (app, *(t for t in tags if t != app))
        priority = priority_of(header_of(scope, b"x-herd-priority"))
        rec = RequestRecord(
            started_at=time.time(),
            started=trio.current_time(),
            dialect=dialect,
            path=path,
            requested_model=requested_model,
            model=model,
            stream=stream,
            client=client[0] if client else None,
            tags=tags,
            app=app_of(tags, scope),
            priority=priority,
        )
        scope[RECORD_KEY] = rec
        request_stack(scope).callback(self.finish, rec)
        return rec

    def finish(self, rec: RequestRecord) -> None:
        rec.duration = trio.current_time() - rec.started
        _tokens(rec)
        rec.perf_inputs = timings(rec.final)
        if rec.model != UNKNOWN and not self.known(rec.model):
            # metrics series and analytics keys only for names the fleet knows: a caller cannot grow them
            rec.model = UNKNOWN
        if rec.status == 200 and not rec.done and rec.error is None:
            rec.fail(499, "client disconnected before the end")
        if rec.status == 200 and rec.error is None and rec.node_id and rec.ttft is not None:
            self.latency.observe(
                rec.node_id,
                rec.model,
                rec.ttft,
                rec.tokens_per_s or 0.0,
                rec.duration,
                rec.concurrency,
                at=trio.current_time(),
                **rec.perf_inputs,
            )
        self.recent.append(rec)
        for sink in self.sinks:
            try:
                sink(rec)
            except Exception:  # a broken observer must never fail a request
                log.exception("request sink failed")


def record_of(scope: Mapping[str, Any]) -> RequestRecord | None:
    rec = scope.get(RECORD_KEY)
    return rec if isinstance(rec, RequestRecord) else None

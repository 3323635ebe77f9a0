"""The shared middle of every inference route: the caller's body parsed once, the routing plan, the request's
record, and a node streaming the (converted) body, opened on the request's exit stack."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from herd.dialects import ollama as ollama_codec
from herd.dialects.tags import extract_tags
from herd.inference.call import JSON, Call, Reply, events
from herd.routing import native, policies, relay
from herd.routing.attempt import Opened
from herd.routing.record import RequestRecord
from herd.services import RouterServices


def caller_body(call: Call) -> tuple[dict[str, Any], tuple[str, ...], bool]:
    """The caller's JSON object with herd's routing tags taken out: (body, tags, whether the body changed)."""
    return extract_tags(ollama_codec.parse_body(call.raw), call.header(b"x-herd-tags"))


async def route(
    svc: RouterServices,
    call: Call,
    upstream_body: dict[str, Any],
    *,
    dialect: str,
    path: str,
    requested: str,
    stream: bool,
    tags: tuple[str, ...],
    task: str = "completion",
    forward: bytes | None = None,
    native: dict[str, Any] | None = None,
) -> tuple[policies.Plan, RequestRecord, Opened]:
    """Policies, the record, and the opened node. `forward`: the caller's own bytes, sent untouched when the
    plan left `upstream_body` alone; `native`: an OpenAI caller's body for an OpenAI node."""
    plan = policies.plan(
        upstream_body,
        strict_header=call.header(b"x-herd-strict"),
        snap=svc.registry.snapshot,
        cfg=svc.policy_now(),
        task=task,
    )
    outcome = svc.recorder.begin(
        call.scope,
        dialect=dialect,
        path=path,
        requested_model=requested,
        model=plan.requested,
        stream=stream,
        tags=tags,
    )
    raw = forward if plan.body is upstream_body else None
    opened = await svc.proxy.open(call.stack, outcome, plan, raw, native)
    return plan, outcome, opened


async def translated_reply(
    opened: Opened,
    outcome: RequestRecord,
    *,
    stream: bool,
    encoder: Callable[[], relay.StreamEncoder],
    accumulator: Callable[[], relay.Accumulator],
    extra_headers: Callable[[dict[str, Any]], dict[str, str]] | None = None,
) -> Reply:
    """A translated caller's answer: the node's chunks re-encoded as the caller's SSE events, or folded into one
    JSON object (`extra_headers`: more headers from that object)."""
    if stream:
        return events(relay.sse(opened, outcome, encoder()), outcome.response_headers())
    result = await relay.fold(opened, outcome, accumulator())
    headers = outcome.response_headers()
    if extra_headers is not None:
        headers |= extra_headers(result)
    return Reply(json.dumps(result).encode(), JSON, headers)


async def native_reply(opened: Opened, outcome: RequestRecord, *, stream: bool, include_usage: bool) -> Reply:
    """An OpenAI caller served by an OpenAI node: the node's own answer, relayed unchanged (SSE or whole)."""
    if stream:
        return events(native.sse(opened, outcome, include_usage=include_usage), outcome.response_headers())
    return Reply(await native.whole(opened, outcome), JSON, outcome.response_headers())

"""Model authoring routes: `POST /api/create`, `POST /api/push`, `HEAD`/`POST /api/blobs/:digest`.

Where each runs is decided in `herd.routing.authoring` (the node named in the body, or `?node=` / `X-Herd-Node`
for blobs; where a create's blobs went; every node with the base model; a node that has the model to push).
The node's NDJSON progress is relayed as it comes (`stream: false`: its one object). After a create succeeds the
router's catalog learns the new model at once (`herd.fleet.catalog_edit`). Like pull, these hold no slot.
Blob bodies are read whole (up to the router's body limit) before they are forwarded.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import trio
from quart import Blueprint, Response, request

from herd.backends.upstream import UpstreamError
from herd.dialects import ollama as codec
from herd.errors import BadRequest, UpstreamFailed
from herd.fleet import catalog_edit
from herd.fleet.state import NodeState, normalize_model
from herd.reqscope import request_stack
from herd.routing import authoring
from herd.services import RouterServices

JSON = "application/json; charset=utf-8"
NDJSON = "application/x-ndjson"


def _model(body: dict[str, Any]) -> str:
    for key in ("model", "name"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value
    raise BadRequest("'model' is required and must be a non-empty string", param="model")


async def _body() -> dict[str, Any]:
    return codec.parse_body(await request.get_data(cache=False, as_text=False, parse_form_data=False))


async def _open(
    svc: RouterServices, stack: AsyncExitStack, node: NodeState, path: str, body: dict[str, Any]
) -> Any:
    """The node's response to `body` on `path`, held open on the request's exit stack."""
    upstream_body = json.dumps({k: v for k, v in body.items() if k != "node"}).encode()
    try:
        return await stack.enter_async_context(svc.upstream.stream("POST", node.url + path, upstream_body))
    except UpstreamError as exc:
        raise UpstreamFailed(f"{path} on {node.node_id} failed: {exc}") from exc


def _succeeded(tail: bytes) -> bool:
    return b'"status":"success"' in tail.replace(b" ", b"")


async def _progress(
    svc: RouterServices,
    stack: AsyncExitStack,
    first: Any,
    nodes: list[NodeState],
    path: str,
    body: dict[str, Any],
    on_success: Any,
) -> AsyncIterator[bytes]:
    """Each node's progress lines in turn (the first node's response is already open); an upstream failure is
    an error line, as Ollama ends a stream."""
    for i, node in enumerate(nodes):
        try:
            resp = first if i == 0 else await _open(svc, stack, node, path, body)
        except UpstreamFailed as exc:
            yield codec.error_line(exc.message)
            return
        tail = b""
        try:
            async for chunk in resp.chunks():
                tail = (tail + chunk)[-64:]
                yield chunk
        except UpstreamError as exc:
            yield codec.error_line(f"herd: {path} on {node.node_id} broke off: {exc}")
            return
        if resp.status == 200 and _succeeded(tail):
            on_success(node)


async def _run(
    svc: RouterServices, nodes: list[NodeState], path: str, body: dict[str, Any], model: str, on_success: Any
) -> Response:
    headers = {"X-Herd-Node": ",".join(n.node_id for n in nodes), "X-Herd-Model": normalize_model(model)}
    stack = request_stack(request.scope)
    if codec.wants_stream(body):
        first = await _open(svc, stack, nodes[0], path, body)
        events = _progress(svc, stack, first, nodes, path, body, on_success)
        response = Response(events, content_type=NDJSON, headers=headers)
        response.timeout = None
        return response
    status, data = 502, b""
    for node in nodes:  # stream: false: one object per node; the last failure (or success) is the answer
        resp = await _open(svc, stack, node, path, body)
        try:
            status, data = resp.status, await resp.read()
        except UpstreamError as exc:
            raise UpstreamFailed(f"{path} on {node.node_id} broke off: {exc}") from exc
        if status != 200:
            break
        on_success(node)
    return Response(data, status=status, content_type=JSON, headers=headers)


async def create(svc: RouterServices) -> Response:
    body = await _body()
    model = _model(body)
    nodes = authoring.create_targets(svc.registry.snapshot, body, svc.blobs)
    base, now = body.get("from"), time.time()

    def created(node: NodeState) -> None:
        like = base if isinstance(base, str) else None
        svc.registry.edit(lambda snap: catalog_edit.added(snap, node.node_id, model, now, like=like))

    return await _run(svc, nodes, "/api/create", body, model, created)


async def push(svc: RouterServices) -> Response:
    body = await _body()
    model = _model(body)
    node = authoring.push_source(svc.registry.snapshot, body, model)
    return await _run(svc, [node], "/api/push", body, model, lambda _node: None)


async def blob(svc: RouterServices, digest: str) -> Response:
    named = request.args.get("node") or request.headers.get("X-Herd-Node")
    snap = svc.registry.snapshot
    node = authoring.blob_target(
        snap, digest, authoring.named_node(snap, named, "upload blobs to"), svc.blobs
    )
    headers = {"X-Herd-Node": node.node_id}
    data = b""
    if request.method == "POST":
        data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    try:
        with trio.fail_after(svc.cfg.upstream.first_byte_timeout):
            async with svc.upstream.stream(
                request.method, f"{node.url}/api/blobs/{digest}", data or None, "application/octet-stream"
            ) as resp:
                status = resp.status
                answer = await resp.read() if request.method == "POST" else b""
    except (UpstreamError, trio.TooSlowError) as exc:
        raise UpstreamFailed(f"blob {request.method} on {node.node_id} failed: {exc}") from exc
    if status in (200, 201):
        svc.blobs.remember(digest, node.node_id)
    return Response(answer, status=status, content_type=JSON if answer else None, headers=headers)


def blueprint(svc: RouterServices) -> Blueprint:
    bp = Blueprint("authoring", __name__)

    async def create_view() -> Response:
        return await create(svc)

    async def push_view() -> Response:
        return await push(svc)

    async def blob_view(digest: str) -> Response:
        return await blob(svc, digest)

    bp.add_url_rule("/api/create", "create", create_view, methods=["POST"])
    bp.add_url_rule("/api/push", "push", push_view, methods=["POST"])
    bp.add_url_rule("/api/blobs/<digest>", "blob", blob_view, methods=["HEAD", "POST"])
    return bp

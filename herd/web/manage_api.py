"""Model management routes: `POST /api/pull` to the best node (or the one named in the body) relaying Ollama's
NDJSON progress, `DELETE /api/delete` and `POST /api/copy` on a named node or on every node that has the model.
These are not generations: they hold no slot and skip the holding queue."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio
from quart import Blueprint, Response, request

from herd.backends.upstream import UpstreamError
from herd.dialects import ollama as codec
from herd.errors import (
    BadRequest,
    ModelNotFound,
    NoNodeAvailable,
    UpstreamFailed,
    UpstreamStatus,
    gateway_status,
)
from herd.fleet import catalog_edit
from herd.fleet.state import FleetSnapshot, NodeState, normalize_model
from herd.reqscope import request_stack
from herd.routing.authoring import named_node
from herd.routing.select import manages_models, pull_target
from herd.services import RouterServices
from herd.validate import header_value, model_name

JSON = "application/json; charset=utf-8"
Edit = Callable[[FleetSnapshot, str], FleetSnapshot]  # a catalog edit for one node, after success


def _name(body: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return model_name(value, key)
    raise BadRequest(f"'{keys[0]}' is required and must be a non-empty string", param=keys[0])


def _named_node(snap: FleetSnapshot, body: dict[str, Any]) -> NodeState | None:
    return named_node(snap, body.get("node"))


def blueprint(svc: RouterServices) -> Blueprint:
    bp = Blueprint("manage", __name__)

    async def forward(node: NodeState, method: str, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        try:
            with trio.fail_after(svc.cfg.upstream.first_byte_timeout):
                async with svc.upstream.stream(method, node.url + path, json.dumps(body).encode()) as resp:
                    return resp.status, await resp.read()
        except (UpstreamError, trio.TooSlowError) as exc:
            raise UpstreamFailed(f"{path} on {node.node_id} failed: {exc}") from exc

    @bp.post("/api/pull")
    async def pull() -> Response:
        body = codec.parse_body(await request.get_data(cache=False, as_text=False, parse_form_data=False))
        model = _name(body, "model", "name")
        snap = svc.registry.snapshot
        node = _named_node(snap, body) or pull_target(snap, svc.registry.paused)
        if node is None:
            raise NoNodeAvailable("no node is online to pull to", retry_after=5)
        upstream_body = {k: v for k, v in body.items() if k != "node"}
        headers = {
            "X-Herd-Node": header_value(node.node_id),
            "X-Herd-Model": header_value(normalize_model(model)),
        }
        now = time.time()

        def pulled(snap: FleetSnapshot) -> FleetSnapshot:
            return catalog_edit.added(snap, node.node_id, model, now)

        if not codec.wants_stream(body):
            status, data = await forward(node, "POST", "/api/pull", upstream_body)
            if status == 200:
                svc.registry.edit(pulled)
            return Response(data, status=gateway_status(status), content_type=JSON, headers=headers)
        stack = request_stack(request.scope)
        try:
            resp = await stack.enter_async_context(
                svc.upstream.stream("POST", node.url + "/api/pull", json.dumps(upstream_body).encode())
            )
        except UpstreamError as exc:
            raise UpstreamFailed(f"/api/pull on {node.node_id} failed: {exc}") from exc
        if resp.status != 200:
            raise UpstreamStatus(resp.status, (await resp.read()).decode("utf-8", "replace")[:300])

        async def progress() -> AsyncIterator[bytes]:
            last = b""
            try:
                async for chunk in resp.chunks():
                    last = (last + chunk)[-64:]
                    yield chunk
            except UpstreamError as exc:
                yield codec.error_line(f"herd: pull on {node.node_id} broke off: {exc}")
                return
            if b'"status":"success"' in last.replace(b" ", b""):
                svc.registry.edit(pulled)

        response = Response(progress(), content_type="application/x-ndjson", headers=headers)
        response.timeout = None
        return response

    async def on_nodes(path: str, method: str, body: dict[str, Any], model: str, edit: Edit) -> Response:
        snap = svc.registry.snapshot
        named = _named_node(snap, body)
        wanted = normalize_model(model)
        targets = (
            [named]
            if named
            else [n for n in snap.nodes.values() if n.routable and wanted in n.models and manages_models(n)]
        )
        if not targets:
            raise ModelNotFound(f"model '{model}' not found on any node", param="model")
        upstream_body = {k: v for k, v in body.items() if k != "node"}
        results: dict[str, int] = {}
        for node in targets:
            status, _ = await forward(node, method, path, upstream_body)
            results[node.node_id] = status
            if status == 200:
                svc.registry.edit(lambda snap: edit(snap, node.node_id))  # noqa: B023  (applied at once)
        ok = [n for n, s in results.items() if s == 200]
        status = 200 if ok else (404 if all(s == 404 for s in results.values()) else 502)
        payload: dict[str, Any] = {"nodes": results}
        if not ok:
            payload["error"] = f"{path} failed on every node: {results}"
        return Response(json.dumps(payload), status=status, content_type=JSON)

    @bp.delete("/api/delete")
    async def delete() -> Response:
        body = codec.parse_body(await request.get_data(cache=False, as_text=False, parse_form_data=False))
        model = _name(body, "model", "name")
        return await on_nodes(
            "/api/delete", "DELETE", body, model, lambda snap, n: catalog_edit.removed(snap, n, model)
        )

    @bp.post("/api/copy")
    async def copy() -> Response:
        body = codec.parse_body(await request.get_data(cache=False, as_text=False, parse_form_data=False))
        source, dest, now = _name(body, "source"), _name(body, "destination"), time.time()
        return await on_nodes(
            "/api/copy",
            "POST",
            body,
            source,
            lambda snap, n: catalog_edit.added(snap, n, dest, now, like=source),
        )

    return bp

"""Where model authoring runs (pure decisions): `ollama create` and `ollama push` through the router.

`ollama create` with files first uploads each blob (`POST /api/blobs/:digest`, after an optional `HEAD`), then
sends `/api/create` with `files: {name: digest}`. The router cannot know at upload time which create will
follow, so a blob goes to the node named in the request (`?node=` or `X-Herd-Node`) or to the pull target
(most free memory), and `BlobBook` remembers where each digest went; the create then runs where its blobs are.
A create `from` a model runs on the named node or on every node that has that model (else the pull target,
which pulls the base first, as Ollama does). A push starts from a node that has the model.
`herd.web.authoring_api` does the I/O; OpenAI-compatible nodes cannot author models (a clear 400).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from herd.errors import BadRequest, ModelNotFound, NoNodeAvailable, NotFound
from herd.fleet.state import FleetSnapshot, NodeState, normalize_model
from herd.routing.select import manages_models, pull_target


class BlobBook:
    """Digest → the node it was uploaded to; bounded (the oldest entries go first)."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._where: OrderedDict[str, str] = OrderedDict()

    def remember(self, digest: str, node_id: str) -> None:
        self._where[digest] = node_id
        self._where.move_to_end(digest)
        while len(self._where) > self.limit:
            self._where.popitem(last=False)

    def where(self, digest: str) -> str | None:
        return self._where.get(digest)

    def __len__(self) -> int:
        return len(self._where)


def named_node(snap: FleetSnapshot, node_id: Any, verb: str = "pull, delete or copy") -> NodeState | None:
    """The node a request names (None if it names none); 404 if unknown, 400 if it cannot manage models."""
    if node_id is None:
        return None
    if not isinstance(node_id, str) or node_id not in snap.nodes:
        raise NotFound(f"no node '{str(node_id)[:200]}' in the fleet", param="node")
    node = snap.nodes[node_id]
    if not manages_models(node):
        raise BadRequest(
            f"node '{node_id}' is an OpenAI-compatible server: herd cannot {verb} its models "
            "(manage them on that server)",
            param="node",
        )
    return node


def _routable(snap: FleetSnapshot, node_id: str | None) -> NodeState | None:
    node = snap.nodes.get(node_id) if node_id else None
    return node if node is not None and node.routable and manages_models(node) else None


def blob_target(snap: FleetSnapshot, digest: str, named: NodeState | None, book: BlobBook) -> NodeState:
    """Where a blob upload (or its existence check) goes."""
    node = named or _routable(snap, book.where(digest)) or pull_target(snap)
    if node is None:
        raise NoNodeAvailable("no Ollama node is online to upload to", retry_after=5)
    return node


def _digests(body: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key in ("files", "adapters"):
        table = body.get(key)
        if table is None:
            continue
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise BadRequest(f"'{key}' must be an object of file name: digest", param=key)
        out += table.values()
    return out


def create_targets(snap: FleetSnapshot, body: dict[str, Any], book: BlobBook) -> list[NodeState]:
    """The nodes a create runs on: the named one; where its blobs went; every node with the base model; or the
    pull target. Blobs on different nodes are a 400 (upload them to one node, or name it)."""
    named = named_node(snap, body.get("node"), "create")
    if named is not None:
        return [named]
    digests = _digests(body)
    if digests:
        holders = {book.where(d) for d in digests}
        if len(holders) > 1:
            raise BadRequest(
                "the files of this create were uploaded to different nodes; upload them with ?node=<id> "
                "to one node or name it in 'node'",
                param="files",
            )
        node = _routable(snap, holders.pop()) or pull_target(snap)
        if node is None:
            raise NoNodeAvailable("no Ollama node is online to create on", retry_after=5)
        return [node]
    base = body.get("from")
    if isinstance(base, str) and base.strip():
        wanted = normalize_model(base)
        having = sorted(
            (n for n in snap.nodes.values() if n.routable and manages_models(n) and wanted in n.models),
            key=lambda n: n.node_id,
        )
        if having:
            return having
    node = pull_target(snap)
    if node is None:
        raise NoNodeAvailable("no Ollama node is online to create on", retry_after=5)
    return [node]


def push_source(snap: FleetSnapshot, body: dict[str, Any], model: str) -> NodeState:
    """The node a push starts from: the named one, else the first routable node that has the model."""
    named = named_node(snap, body.get("node"), "push")
    if named is not None:
        return named
    wanted = normalize_model(model)
    having = sorted(
        (n for n in snap.nodes.values() if n.routable and manages_models(n) and wanted in n.models),
        key=lambda n: n.node_id,
    )
    if not having:
        raise ModelNotFound(f"model '{model}' not found on any node that can push it", param="model")
    return having[0]

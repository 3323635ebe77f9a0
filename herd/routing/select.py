"""Node selection: a pure function from (fleet snapshot, model, in-flight counts) to ranked candidates.

This is the walking skeleton's policy (prefer nodes with the model loaded, then fewest requests in flight);
the scoring engine replaces `rank` behind the same signature. `herd.routing.proxy` calls it before every attempt.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from herd.errors import BadRequest, ModelNotFound, NoNodeAvailable
from herd.fleet.state import FleetSnapshot, NodeState
from herd.routing.guest import usable_memory


def rank(
    snap: FleetSnapshot,
    model: str,
    in_flight: Mapping[tuple[str, str], int],
    exclude: Collection[str] = (),
) -> list[NodeState]:
    """Routable nodes that have `model`, best first. Ties keep a stable order by node id."""
    candidates = [
        node
        for node in snap.nodes.values()
        if node.routable and model in node.models and node.node_id not in exclude
    ]
    candidates.sort(
        key=lambda n: (
            model not in n.loaded,
            in_flight.get((n.node_id, model), 0) + sum(in_flight.get((n.node_id, m), 0) for m in n.loaded),
            n.node_id,
        )
    )
    return candidates


def elimination_reasons(
    snap: FleetSnapshot, eliminated: Mapping[str, str], paused: Collection[str], broken: Collection[str]
) -> dict[str, str]:
    """node id -> what rules it out: the scorer's elimination first, else paused, else an open circuit."""
    reasons = {n: "circuit open" for n in broken if n in snap.nodes}
    reasons |= {n: "paused" for n in paused if n in snap.nodes}
    return reasons | dict(eliminated)


def no_candidate_error(
    snap: FleetSnapshot,
    model: str,
    retry_after: float,
    needs: frozenset[str] = frozenset(),
    reasons: Mapping[str, str] | None = None,
) -> Exception:
    """Why ranking came back empty, as the error the client should see. `reasons` (node id -> what eliminated
    it, from `Scorer.eliminated` plus paused and broken nodes) names the constraint that ruled out each node
    that has the model."""
    if needs and snap.lacks(model, needs):
        return BadRequest(
            f"model '{model}' does not support {', '.join(sorted(needs))} (send it to a model that does)",
            param="model",
        )
    if not snap.knows_model(model):
        return ModelNotFound(f"model '{model}' not found on any node, try pulling it first", param="model")
    why = {node_id: r for node_id, r in (reasons or {}).items() if r != "model absent"}
    if why:
        listed = "; ".join(f"{node_id}: {r}" for node_id, r in sorted(why.items()))
        return NoNodeAvailable(
            f"model '{model}' exists in the fleet but no node can serve it ({listed})",
            retry_after=retry_after,
        )
    return NoNodeAvailable(
        f"model '{model}' exists in the fleet but no node that has it is online", retry_after=retry_after
    )


def manages_models(node: NodeState) -> bool:
    """Whether herd can pull, delete and copy models on `node` (Ollama can; OpenAI-compatible servers serve
    the models they were started with)."""
    return node.heartbeat.speaks_ollama


def pull_targets(snap: FleetSnapshot, paused: Collection[str] = ()) -> list[NodeState]:
    """Where a pull should land, best first: routable Ollama nodes an operator has not paused, the most free
    memory first, then free disk (ties by node id)."""
    nodes = [n for n in snap.nodes.values() if n.routable and manages_models(n) and n.node_id not in paused]
    nodes.sort(key=lambda n: (-usable_memory(n.heartbeat), -n.heartbeat.host.disk_free, n.node_id))
    return nodes


def pull_target(snap: FleetSnapshot, paused: Collection[str] = ()) -> NodeState | None:
    """The best of `pull_targets`, or None."""
    nodes = pull_targets(snap, paused)
    return nodes[0] if nodes else None

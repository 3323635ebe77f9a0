"""What a ranking decides (pure): the candidate to claim a slot on now, or to keep waiting in the holding queue
(`herd.routing.proxy`, and the fleet simulator's herd policy), and the `X-Herd-Score` / `X-Herd-Candidates`
headers that tell the caller how the nodes ranked (`herd.routing.score` ranks them)."""

from __future__ import annotations

from herd.routing.signals import Candidate


def decide(ranked: list[Candidate]) -> Candidate | None:
    """The candidate to take a slot on now, or None to keep waiting in the holding queue: every candidate is
    full, or a hot node will free up sooner than the best cold one can load the model."""
    if not ranked or ranked[0].full:
        return None
    best = ranked[0]
    if not best.hot and any(c.hot and c.full and c.est_wait < best.est_wait for c in ranked):
        return None
    return best


def format_headers(cands: list[Candidate], limit: int = 5) -> dict[str, str]:
    if not cands:
        return {}
    return {
        "X-Herd-Score": f"{cands[0].score:.3f}",
        "X-Herd-Candidates": ",".join(f"{c.node.node_id}={c.score:.3f}" for c in cands[:limit]),
    }

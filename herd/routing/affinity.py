"""Conversation affinity (prompt-cache reuse): which node last evaluated which prompt prefix.

llama.cpp and Ollama keep the last prompt's KV cache in the slot that served it, so the next turn of the same
chat costs only its new tokens there. `prefixes` hashes a request's prompt into a chain of prefixes (chat: the
messages one by one, system first; `/api/generate`: the prompt in whole blocks of `BLOCK` characters, or the
`context` array a previous answer returned); `AffinityBook` remembers, in a bounded LRU whose entries expire,
which node served each full prompt, and `cached` tells the scorer how many prompt tokens each node still holds
for a new request (the longest remembered prefix). `herd.routing.estimate` credits those tokens in the time to
finish, so affinity wins exactly when it saves time. The proxy looks up before ranking; the recorder sink
`remember` stores the served prompt when a response ends well. Pure apart from the clock value passed in.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from herd.routing.estimate import CHARS_PER_TOKEN, message_chars

AFFINITY_PATHS = (
    "/api/chat",
    "/api/generate",
)  # upstream paths whose prompts a node caches (every chat dialect)
BLOCK = 256  # characters per prefix block of a raw prompt
ENTRIES = 10_000  # prefixes remembered (LRU)
TTL = 600.0  # s after which a remembered prefix counts as evicted from the node's cache


@dataclass(frozen=True, slots=True)
class Prefixes:
    """A request's prompt as a chain of prefix hashes, shortest first, each with its size in tokens. The last
    one is the whole prompt: what the serving node will have cached afterwards."""

    chain: tuple[tuple[str, int], ...]

    @property
    def whole(self) -> tuple[str, int] | None:
        return self.chain[-1] if self.chain else None


def _hash_chain(parts: list[tuple[bytes, int]], seed: str) -> tuple[tuple[str, int], ...]:
    h = hashlib.blake2b(seed.encode(), digest_size=16)
    out, chars = [], 0
    for data, n in parts:
        h.update(data)
        chars += n
        out.append((h.copy().hexdigest(), chars // CHARS_PER_TOKEN))
    return tuple(out)


def prefixes(model: str, body: Mapping[str, Any]) -> Prefixes:
    """The prefix chain of a chat (`messages`) or generate (`prompt`, `context`) body for `model`."""
    seed = f"{model}\0"
    messages = body.get("messages")
    if isinstance(messages, list):
        parts = []
        system = body.get("system")
        if isinstance(system, str) and system:
            parts.append((b"system\0" + system.encode() + b"\0", len(system)))
        for m in messages:
            if not isinstance(m, dict):
                continue
            raw = json.dumps([m.get("role"), m.get("content"), m.get("images")], sort_keys=True).encode()
            parts.append((raw + b"\0", message_chars(m)))
        return Prefixes(_hash_chain(parts, seed + "chat"))
    context = body.get("context")
    if isinstance(context, list) and context:
        key = hashlib.blake2b(json.dumps(context).encode(), digest_size=16).hexdigest()
        return Prefixes(((key, len(context)),))
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        system = body.get("system") if isinstance(body.get("system"), str) else ""
        text = f"{system}\0{prompt}"
        # whole blocks only: a longer prompt that starts the same way shares them (a partial one it may not)
        blocks = [text[i : i + BLOCK] for i in range(0, len(text) - BLOCK + 1, BLOCK)]
        return Prefixes(_hash_chain([(b.encode(), len(b)) for b in blocks], seed + "generate"))
    return Prefixes(())


def context_key(context: Any) -> tuple[str, int] | None:
    """The key of a `context` array an Ollama answer returned (the next `/api/generate` sends it back)."""
    if not isinstance(context, list) or not context:
        return None
    return hashlib.blake2b(json.dumps(context).encode(), digest_size=16).hexdigest(), len(context)


class AffinityBook:
    """Bounded LRU: prefix hash -> (node id, tokens, when). A node holds at most one prompt per slot (llama.cpp
    and Ollama keep one cache per parallel slot): remembering a prompt drops the node's entries it extends (the
    same conversation, now longer) and then its least recent ones beyond its slots. Entries older than `ttl`
    seconds count as gone (a backend reuses slots for other requests; after a while the prefix is likely
    evicted)."""

    def __init__(self, capacity: int = ENTRIES, ttl: float = TTL) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[str, int, float]] = OrderedDict()
        self._by_node: dict[str, OrderedDict[str, None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, p: Prefixes, now: float) -> dict[str, int]:
        """node id -> prompt tokens it holds for this request: the longest remembered prefix per node."""
        out: dict[str, int] = {}
        for key, _ in reversed(p.chain):
            entry = self._entries.get(key)
            if entry is None:
                continue
            node_id, tokens, at = entry
            if now - at > self.ttl:
                self._forget(key)
                continue
            self._entries.move_to_end(key)
            out.setdefault(node_id, tokens)
        return out

    def remember(
        self,
        key: str,
        tokens: int,
        node_id: str,
        now: float,
        *,
        slots: int = 0,
        extends: tuple[tuple[str, int], ...] = (),
    ) -> None:
        """`node_id` now holds prompt `key`; `extends` is its prefix chain (superseded entries of the same
        node), `slots` the node's parallel slots (0: unbounded)."""
        held = self._by_node.setdefault(node_id, OrderedDict())
        for older, _ in extends:
            if older != key and self._entries.get(older, ("",))[0] == node_id:
                self._forget(older)
        self._forget(key)
        self._entries[key] = (node_id, tokens, now)
        held[key] = None
        while slots and len(held) > slots:
            self._forget(next(iter(held)))
        while len(self._entries) > self.capacity:
            self._forget(next(iter(self._entries)))

    def _forget(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            held = self._by_node.get(entry[0])
            if held is not None:
                held.pop(key, None)
                if not held:
                    del self._by_node[entry[0]]


def lookup(
    book: AffinityBook, model: str, body: Mapping[str, Any], now: float
) -> tuple[Prefixes, dict[str, int]]:
    """A request's prefix chain and, per node, the prompt tokens it still holds (the proxy, before ranking)."""
    p = prefixes(model, body)
    return p, book.cached(p, now)


def verdict(cached: Mapping[str, int], node_id: str) -> str:
    """`X-Herd-Affinity`: "hit" when the chosen node holds part of the prompt, else "miss"."""
    return "hit" if cached.get(node_id, 0) > 0 else "miss"


def remember_sink(
    book: AffinityBook, clock: Callable[[], float], slots: Callable[[str, str], int]
) -> Callable[[Any], None]:
    """A recorder sink: after a good response, the node that served it holds its whole prompt (and, for
    `/api/generate`, the `context` it returned) in one of its `slots(node_id, model)` slots."""

    def sink(rec: Any) -> None:
        if rec.status != 200 or rec.error or not rec.node_id or rec.prefix is None:
            return
        now, n = clock(), slots(rec.node_id, rec.model)
        whole = rec.prefix.whole
        if whole is not None:
            book.remember(whole[0], whole[1], rec.node_id, now, slots=n, extends=rec.prefix.chain)
        returned = context_key(rec.final.get("context")) if isinstance(rec.final, dict) else None
        if returned is not None:
            book.remember(returned[0], returned[1], rec.node_id, now, slots=n, extends=rec.prefix.chain)

    return sink

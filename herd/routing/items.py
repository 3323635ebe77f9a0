"""Recent Responses API output items, by id (bounded): what lets an `item_reference` input be resolved.

herd stores no responses (`previous_response_id` is a 400), but clients such as the Vercel AI SDK refer back to
earlier assistant items by id (`{"type": "item_reference", "id": "msg_..."}`) instead of resending them. The
`/v1/responses` route keeps each finished response's output items here; `herd.dialects.responses` asks for them
while converting a request. Oldest items go first once `limit` items are held.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class RecentItems:
    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def keep(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            item_id = item.get("id")
            if isinstance(item_id, str) and item_id:
                self._items[item_id] = item
                self._items.move_to_end(item_id)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def recall(self, item_id: str) -> dict[str, Any] | None:
        return self._items.get(item_id)

    def __len__(self) -> int:
        return len(self._items)

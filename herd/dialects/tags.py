"""Request tags for per-app analytics: `metadata.tags` in the body (removed before the body is forwarded) and
the `X-Herd-Tags` header (comma-separated). Pure; the web handlers call `extract_tags` and put the tags on the
request record."""

from __future__ import annotations

from typing import Any

from herd.errors import BadRequest

MAX_TAGS = 20
MAX_TAG_LEN = 100


def _clean(raw: list[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for tag in raw:
        tag = tag.strip()
        if not tag:
            continue
        if len(tag) > MAX_TAG_LEN:
            raise BadRequest(
                f"tag too long (max {MAX_TAG_LEN} characters): {tag[:20]}...", param="metadata.tags"
            )
        seen[tag] = None
    if len(seen) > MAX_TAGS:
        raise BadRequest(f"at most {MAX_TAGS} tags per request", param="metadata.tags")
    return tuple(seen)


def extract_tags(body: dict[str, Any], header: str | None) -> tuple[dict[str, Any], tuple[str, ...], bool]:
    """Return (body without `metadata`, tags, whether the body changed)."""
    raw: list[str] = [t for t in header.split(",")] if header else []
    if "metadata" not in body:
        return body, _clean(raw), False
    meta = body["metadata"]
    if meta is not None and not isinstance(meta, dict):
        raise BadRequest("'metadata' must be an object", param="metadata")
    tags = (meta or {}).get("tags", [])
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise BadRequest("'metadata.tags' must be a list of strings", param="metadata.tags")
    stripped = {k: v for k, v in body.items() if k != "metadata"}
    return stripped, _clean(raw + tags), True

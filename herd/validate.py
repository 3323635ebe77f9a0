"""Validation at the edge, one rule per input kind (pure): everything a client or a node agent sends passes
one of these before it reaches routing, the fleet, headers, metrics or SQLite.

- JSON bodies (`json_values`, called by every body parser): nesting depth, integers within 64 bits, finite
  numbers. Nothing past this point can overflow a float or a Go int64.
- Model names (`model_name`): 1-256 characters (Ollama's own parts are at most 80: namespace, model, tag,
  plus a host), no control characters, no lone surrogates, not blank. The same rule for inference requests,
  `/api/show`, pull, copy, delete, fallback models and the names a heartbeat reports.
- Bounded strings (`text`): node ids, versions, multipart fields, path segments: a length limit, no control
  characters (free text such as a prompt may keep newlines and tabs), no lone surrogates.
- Query parameters (`query_int`), numbers (`number`).
- What the router echoes (`header_value`) and stores (`storable`): never a CR/LF, never unbounded, never a
  surrogate that UTF-8 cannot encode.

A bad value raises `BadRequest` naming the field, which the web layer renders in the caller's dialect.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from herd.errors import BadRequest

MAX_MODEL_NAME = 256
MAX_DEPTH = 64
INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # Go's int64 and uint64 between them: what Ollama can read
MAX_HEADER_ECHO = 256
UNKNOWN = "(unknown)"  # the one metrics label and analytics key for names the fleet does not know

_CONTROL = frozenset(("Cc", "Cs", "Zl", "Zp"))  # control, lone surrogate, line and paragraph separator
_FREE_TEXT_OK = frozenset("\n\r\t")


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def flaw(value: str, *, free_text: bool = False) -> str | None:
    """Why `value` cannot be used as a name or label (None if it can)."""
    if value.isascii() and value.isprintable():  # the usual case: no control character, no surrogate
        return None
    for ch in value:
        if free_text and ch in _FREE_TEXT_OK:
            continue
        category = unicodedata.category(ch)
        if category in _CONTROL:
            return "a lone surrogate" if category == "Cs" else f"the control character U+{ord(ch):04X}"
    return None


def text(value: Any, param: str, max_len: int, *, free_text: bool = False, empty: bool = False) -> str:
    """A bounded string without control characters or lone surrogates."""
    if not isinstance(value, str):
        raise BadRequest(f"'{param}' must be a string, got {json_type(value)}", param=param)
    if not value and not empty:
        raise BadRequest(f"'{param}' must not be empty", param=param)
    if len(value) > max_len:
        raise BadRequest(f"'{param}' is longer than {max_len} characters", param=param)
    problem = flaw(value, free_text=free_text)
    if problem is not None:
        raise BadRequest(f"'{param}' must not contain {problem}", param=param)
    return value


def model_name(value: Any, param: str = "model") -> str:
    """A model name as herd accepts it anywhere (see the module docstring)."""
    if not isinstance(value, str):
        raise BadRequest(f"'{param}' must be a string, got {json_type(value)}", param=param)
    if not value:
        raise BadRequest(f"'{param}' is required", param=param)
    if not value.strip():
        raise BadRequest(f"'{param}' must not be blank", param=param)
    return text(value, param, MAX_MODEL_NAME)


def number(value: Any, param: str, lo: float, hi: float, *, integer: bool = False) -> float:
    """A finite number (an integer when `integer`) within [lo, hi]."""
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or (isinstance(value, float) and not math.isfinite(value)):
        raise BadRequest(f"'{param}' must be {'an integer' if integer else 'a number'}", param=param)
    if not lo <= value <= hi:
        raise BadRequest(f"'{param}' must be from {lo:g} to {hi:g}", param=param)
    return value


def query_int(args: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """A whole-number query parameter (ASCII digits only: `isdigit` also accepts superscripts and other scripts' digits)."""
    raw = args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12 and lo <= int(raw) <= hi):
        raise BadRequest(f"'{name}' must be a whole number from {lo} to {hi}", param=name)
    return int(raw)


def json_values(body: Any) -> None:
    """Reject what a decoded JSON body must not carry anywhere: nesting deeper than MAX_DEPTH, integers
    outside 64 bits, non-finite floats (`1e999` decodes to inf). Iterative, so depth cannot exhaust the stack."""
    # Each entry: (value, where, depth); `where` is (parent's where, key or index), turned into a path string only
    # for an error message (most bodies have none, and formatting a path per value cost more than the checks).
    stack: list[tuple[Any, Any, int]] = [(body, None, 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict):
            if depth >= MAX_DEPTH:
                raise BadRequest(
                    f"request body nested deeper than {MAX_DEPTH} levels", param=_path(where) or None
                )
            stack += [(v, (where, k), depth + 1) for k, v in value.items()]
        elif isinstance(value, list):
            if depth >= MAX_DEPTH:
                raise BadRequest(
                    f"request body nested deeper than {MAX_DEPTH} levels", param=_path(where) or None
                )
            stack += [(v, (where, i), depth + 1) for i, v in enumerate(value)]
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not INT_MIN <= value <= INT_MAX:
                path = _path(where)
                raise BadRequest(f"'{path}' is an integer out of range", param=path or None)
        elif isinstance(value, float) and not math.isfinite(value):
            path = _path(where)
            raise BadRequest(f"'{path}' must be a finite number", param=path or None)


def _path(where: Any) -> str:
    """`a.b[2].c` from a `json_values` chain of (parent, key or index)."""
    keys: list[Any] = []
    while where is not None:
        where, key = where
        keys.append(key)
    path = ""
    for key in reversed(keys):
        if isinstance(key, int) and not isinstance(key, bool):
            path += f"[{key}]"
        else:
            path = f"{path}.{key}" if path else str(key)
    return path


def header_value(value: str, limit: int = MAX_HEADER_ECHO) -> str:
    """A value safe to echo in a response header: printable ASCII (anything else percent-encoded, so no CR/LF
    can split the header), at most `limit` characters (longer values are cut and end with '...')."""
    if value.isascii() and value.isprintable() and "%" not in value:
        safe = value  # what quote() would return: printable ASCII but '%' is all in its safe set
    else:
        safe = quote(value.encode("utf-8", "replace"), safe=" !\"#$&'()*+,/:;<=>?@[\\]^`{|}~")
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


MAX_HEADER_BYTES = 8192  # a response header value's bound (the net under what routes echo)


def safe_header(value: bytes) -> bytes:
    """A response header value as h11 accepts it: no CR, LF or NUL (they would split or break the header),
    and bounded (routes bound what they echo; this is the net under them). Used by both web layers."""
    if len(value) > MAX_HEADER_BYTES:
        value = value[:MAX_HEADER_BYTES]
    if b"\r" in value or b"\n" in value or b"\x00" in value:
        value = value.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\x00", b"")
    return value.strip()


def storable(value: str) -> str:
    """A string SQLite (and any UTF-8 writer) can take: lone surrogates become U+FFFD."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value)
    return value

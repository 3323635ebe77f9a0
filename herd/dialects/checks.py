"""Small pure type checks shared by the dialect codecs (`herd.dialects.ollama`, `herd.dialects.openai_request`).

Request bodies arrive as decoded JSON; these helpers turn a wrong type into a `BadRequest` whose `param` is the
field path (e.g. `messages[1].content`) and whose message names the JSON types involved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from herd.errors import BadRequest
from herd.validate import json_type, model_name

Check = Callable[[Any], bool]
__all__ = ["json_type"]


def is_str(value: Any) -> bool:
    return isinstance(value, str)


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def is_number(value: Any) -> bool:
    """int or float, but not bool (which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def is_list(value: Any) -> bool:
    return isinstance(value, list)


def is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def is_int_list(value: Any) -> bool:
    return isinstance(value, list) and all(is_int(v) for v in value)


def path_of(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def fail(param: str, message: str) -> NoReturn:
    raise BadRequest(message, param=param)


def wrong_type(param: str, what: str, value: Any) -> NoReturn:
    fail(param, f"'{param}' must be {what}, got {json_type(value)}")


def optional(obj: dict[str, Any], key: str, check: Check, what: str, prefix: str = "") -> Any:
    """`obj[key]` if it is absent/null (→ None) or passes `check`; else BadRequest naming the field path."""
    value = obj.get(key)
    if value is not None and not check(value):
        wrong_type(path_of(prefix, key), what, value)
    return value


def required_str(obj: dict[str, Any], key: str, prefix: str = "") -> str:
    """A non-empty string field; BadRequest if missing, null, empty or of another type."""
    value = obj.get(key)
    path = path_of(prefix, key)
    if value is None or value == "":
        fail(path, f"'{path}' is required")
    if not isinstance(value, str):
        wrong_type(path, "a string", value)
    if not value.strip():
        fail(path, f"'{path}' must not be blank")
    return value


def required_model(obj: dict[str, Any], key: str, prefix: str = "") -> str:
    """A model name field: required, and within herd's one rule for names (`herd.validate.model_name`)."""
    path = path_of(prefix, key)
    value = obj.get(key)
    if value is None or value == "":
        fail(path, f"'{path}' is required")
    return model_name(value, path)


def as_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        wrong_type(path, "an object", value)
    return value

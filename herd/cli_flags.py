"""How the CLI modules (`herd.cli`, `herd.cli_node`, `herd.cli_routing`, ...) declare a flag that has an
environment variable: once, with the variable, its default and the help text's "(env X; default Y)" made
from them. The environment arrives as an explicit mapping; nothing here reads `os.environ`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

TRUE = ("1", "true", "yes", "on")


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no environment variable: 1, true, yes or on (any case) is yes; unset is `default`."""
    raw = env.get(name)
    return default if raw is None else raw.strip().lower() in TRUE


def _shown(default: object) -> str:
    return f"{default:g}" if isinstance(default, float) else str(default)


class EnvFlags:
    """Declares flags on `parser` (an argparse parser) whose defaults come from `env`."""

    def __init__(self, parser: Any, env: Mapping[str, str]) -> None:
        self.parser = parser
        self.env = env

    def add(
        self,
        flag: str,
        var: str,
        *,
        help: str,
        type: Callable[[Any], Any] | None = None,
        default: Any = None,
        note: str | None = None,
        **kwargs: Any,
    ) -> None:
        """`flag`, defaulting to `var` (else `default`), converted by `type`. The help ends "(env VAR; default
        D)", or "(env VAR; NOTE)" given a `note` (e.g. "default: the host name"), or "(env VAR)" when there is
        neither a default nor a note."""
        raw = self.env.get(var, default)
        value = type(raw) if type is not None and raw is not None else raw
        if note is None and default is not None:
            note = f"default {_shown(default)}"
        suffix = f"(env {var}; {note})" if note else f"(env {var})"
        if type is not None:
            kwargs["type"] = type
        self.parser.add_argument(flag, default=value, help=f"{help} {suffix}", **kwargs)

    def switch(self, flag: str, var: str, *, help: str) -> None:
        """A yes/no flag: `--x` is off unless VAR=1 ("(env VAR=1; default off)"); `--no-x` turns off what is
        on unless VAR=0 ("(env VAR=0)")."""
        if flag.startswith("--no-"):
            default, suffix = not env_bool(self.env, var, True), f"(env {var}=0)"
        else:
            default, suffix = env_bool(self.env, var, False), f"(env {var}=1; default off)"
        self.parser.add_argument(flag, action="store_true", default=default, help=f"{help} {suffix}")

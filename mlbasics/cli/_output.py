"""Shared output helpers: consoles, how specs and params are written in tables and JSON, and how
errors are said (their lines and the exit status)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from rich.console import Console

from mlbasics.core.specs import REQUIRED, ComponentSpec, Param, type_name
from mlbasics.errors import MlbasicsError, PluginBugError, first_line

EXIT_USER_ERROR = 2
EXIT_PLUGIN_BUG = 1
EXIT_INTERRUPTED = 130


def error_lines(exc: MlbasicsError | PluginBugError) -> list[str]:
    """What the command prints for ``exc``: a user error's lines, or a plugin's failure in one."""
    if isinstance(exc, PluginBugError):
        return [f"mlbasics: error: {first_line(exc)} (--debug shows the traceback)"]
    return [f"mlbasics: error: {line}" for line in str(exc).splitlines()]


def exit_status(exc: MlbasicsError | PluginBugError) -> int:
    """The command's exit status for ``exc``: 2 for the user's mistake, 1 for a plugin's failure."""
    return EXIT_PLUGIN_BUG if isinstance(exc, PluginBugError) else EXIT_USER_ERROR


def stdout() -> Console:
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler that writes to whatever ``sys.stderr`` is when a note is given, not the one it was
    made with: ``main()`` may run many times in one process (tests, notebooks), each with its own."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # the stream is always the current sys.stderr


def show_notes() -> None:
    """Print the notes mlbasics gives (why a faster path was not taken) as ``mlbasics: note: ...``
    on stderr, instead of Python's bare default."""
    logger = logging.getLogger("mlbasics")
    if not any(getattr(handler, "_mlbasics_notes", False) for handler in logger.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("mlbasics: note: %(message)s"))
        handler._mlbasics_notes = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


def print_json(data: Any) -> None:
    """JSON on stdout and nothing else, so it can be piped into other tools."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def format_param(param: Param) -> str:
    """``lr: float = 0.01 (> 0)``"""
    text = f"{param.name}: {type_name(param.type)}"
    if param.default is REQUIRED:
        text += " (required)"
    else:
        text += f" = {format_value(param.default)}"
    constraint = param.constraint()
    return f"{text} ({constraint})" if constraint else text


def format_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    return str(value)


def param_to_json(param: Param) -> dict[str, Any]:
    return {
        "name": param.name,
        "type": type_name(param.type),
        "required": param.required,
        "default": None if param.required else param.default,
        "constraint": param.constraint() or None,
        "help": param.help,
    }


def plugin_label(spec: ComponentSpec) -> str:
    plugin = spec.plugin
    if plugin is None:
        return "?"
    return f"{plugin.name} {plugin.version}" if plugin.version else plugin.name

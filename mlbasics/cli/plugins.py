"""``mlbasics plugins``: every plugin found, with its distribution (or file), version and status."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.table import Table
from rich.text import Text

from mlbasics.cli._output import print_json, stdout
from mlbasics.core.plugins import PluginRecord
from mlbasics.core.registry import Registry, default_registry

_STYLE = {"active": "green", "disabled": "yellow", "failed": "red", "conflict": "red"}


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "plugins",
        help="list plugins and their status (active, disabled, failed, conflict)",
        description="List every plugin found (installed distributions, and the plugin files of "
        "--plugins-dir and MLBASICS_PLUGINS_DIR), where it came from, and whether it is active, "
        "disabled (MLBASICS_PLUGINS / MLBASICS_DISABLE_PLUGINS), failed (and why), or in conflict "
        "(it provides a component another plugin also provides, which no one can then use).",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


def _status(registry: Registry, record: PluginRecord) -> tuple[str, str | None]:
    """The status shown for ``record``: its own, or ``conflict`` (naming the clashes) for an active
    plugin that provides a name another plugin also provides, which then no one can use."""
    if record.status == "active":
        clashes = registry.conflicts(record.name)
        if clashes:
            return "conflict", (
                f"{'; '.join(clashes)}: unusable until one plugin is disabled (MLBASICS_DISABLE_PLUGINS) "
                "or declares overrides=True"
            )
    return record.status, record.error


def run(args: argparse.Namespace) -> int:
    registry = default_registry()
    records = registry.records
    counts: dict[str, int] = {}
    for spec in registry.specs():
        if spec.plugin is not None:
            counts[spec.plugin.name] = counts.get(spec.plugin.name, 0) + 1
    statuses = {r.name: _status(registry, r) for r in records}
    allow_problem = registry.plugins.allow_list_problem()
    if allow_problem is not None:
        print(f"mlbasics: warning: {allow_problem}", file=sys.stderr)
    if args.json:
        print_json(
            [
                {
                    "name": r.name,
                    "distribution": r.info.distribution,
                    "version": r.info.version,
                    "module": r.info.module,
                    "path": r.info.path,
                    "status": statuses[r.name][0],
                    "error": statuses[r.name][1],
                    "components": counts.get(r.name, 0) if r.status == "active" else 0,
                }
                for r in records
            ]
        )
        return 0
    table = Table(title="mlbasics plugins", title_justify="left")
    for column in ("plugin", "from", "version", "components", "status"):
        table.add_column(column, overflow="fold")
    for r in records:
        status, error = statuses[r.name]
        state = Text(status, style=_STYLE[status])
        if error:
            state.append(f": {error}")
        components = str(counts.get(r.name, 0)) if r.status == "active" else "-"
        table.add_row(
            Text(r.name),
            Text(r.info.distribution or r.info.path or "-"),
            Text(r.info.version or "-"),
            components,
            state,
        )
    console = stdout()
    if records:
        console.print(table)
    else:
        console.print("no plugins found (is mlbasics installed, and MLBASICS_PLUGINS unset?)")
    if args.debug:
        for r in records:
            if r.details:
                console.print(Text(f"\n{r.name}:\n{r.details}"))
    return 0

"""``mlbasics plugins``: every plugin found, with its distribution (or file), version and status."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from rich.text import Text

from mlbasics.cli._output import print_json, stdout
from mlbasics.registry import default_registry

_STYLE = {"active": "green", "disabled": "yellow", "failed": "red"}


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "plugins",
        help="list plugins and their status (active, disabled, failed)",
        description="List every plugin found (installed distributions, and the plugin files of "
        "--plugins-dir and MLBASICS_PLUGINS_DIR), where it came from, and whether it is active, "
        "disabled (MLBASICS_PLUGINS / MLBASICS_DISABLE_PLUGINS) or failed (and why).",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    registry = default_registry()
    records = registry.records
    counts: dict[str, int] = {}
    for spec in registry.specs():
        if spec.plugin is not None:
            counts[spec.plugin.name] = counts.get(spec.plugin.name, 0) + 1
    if args.json:
        print_json(
            [
                {
                    "name": r.name,
                    "distribution": r.info.distribution,
                    "version": r.info.version,
                    "module": r.info.module,
                    "path": r.info.path,
                    "status": r.status,
                    "error": r.error,
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
        state = Text(r.status, style=_STYLE[r.status])
        if r.error:
            state.append(f": {r.error}")
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

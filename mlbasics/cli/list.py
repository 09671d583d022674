"""``mlbasics list [KIND] [PATTERN]``: the components the installed plugins provide."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.table import Table
from rich.text import Text

from mlbasics.cli._output import format_param, param_to_json, plugin_label, print_json, stdout
from mlbasics.core.registry import Registry, default_registry
from mlbasics.core.specs import TASKS, ComponentSpec, plural


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "list",
        help="list components (datasets, models, activations, losses, optimizers)",
        description="List the components of every active plugin, with their params and provenance.",
    )
    parser.add_argument(
        "kind", nargs="?", help="only this kind: dataset(s), model(s), activation(s), loss(es), optimizer(s)"
    )
    parser.add_argument("pattern", nargs="?", default="*", help="only names matching this glob, e.g. 'lin*'")
    parser.add_argument(
        "--task",
        choices=TASKS,
        help="only components that serve this task: regression (real-valued targets) or classification",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_const", const="json", dest="format", help="print JSON")
    output.add_argument(
        "--format",
        choices=["table", "json", "markdown"],
        default="table",
        help="table (default), json, or markdown (the docs' component reference)",
    )
    parser.set_defaults(run=run)


def to_json(registry: Registry, spec: ComponentSpec) -> dict[str, Any]:
    plugin = spec.plugin
    return {
        "kind": spec.kind,
        "name": spec.name,
        "summary": spec.summary,
        "params": [param_to_json(p) for p in spec.params],
        "tags": sorted(spec.tags),
        # What it serves: "regression" (real-valued targets), "classification" (class labels), or both.
        "tasks": [task for task in TASKS if spec.serves(task)],
        # An optimizer with a stacked form: sweeps train its members as one vmapped ensemble.
        "stacked": spec.stacked is not None,
        "plugin": {
            "name": plugin.name if plugin else None,
            "distribution": plugin.distribution if plugin else None,
            "version": plugin.version if plugin else None,
            "path": plugin.path if plugin else None,
        },
        "status": registry.status(spec),
    }


def to_markdown(registry: Registry, specs: list[ComponentSpec]) -> str:
    """One section per kind, one row per component: the reference page of the docs."""
    lines: list[str] = []
    for kind in dict.fromkeys(spec.kind for spec in specs):
        lines += [
            f"## {plural(kind).capitalize()}",
            "",
            "| name | task | summary | params | plugin |",
            "|---|---|---|---|---|",
        ]
        for spec in (s for s in specs if s.kind == kind):
            params = "<br>".join(f"`{format_param(p)}`" for p in spec.params) or "-"
            summary = spec.summary.replace("|", "\\|")
            state = registry.status(spec)
            name = f"`{spec.name}`" if state == "available" else f"`{spec.name}`<br>*{state}*"
            lines.append(f"| {name} | {task_label(spec)} | {summary} | {params} | {plugin_label(spec)} |")
        lines.append("")
    return "\n".join(lines)


def task_label(spec: ComponentSpec) -> str:
    """``regression``, ``classification`` or ``both``."""
    return "both" if len(spec.tasks) == len(TASKS) else next(iter(spec.tasks))


def run(args: argparse.Namespace) -> int:
    registry = default_registry()
    specs = [
        spec
        for spec in registry.specs(args.kind, args.pattern)
        if args.task is None or spec.serves(args.task)
    ]
    allow_problem = registry.plugins.allow_list_problem()
    if allow_problem is not None:
        print(f"mlbasics: warning: {allow_problem}", file=sys.stderr)
    if args.format == "json":
        print_json([to_json(registry, spec) for spec in specs])
        return 0
    if args.format == "markdown":
        print(to_markdown(registry, specs), end="")
        return 0
    console = stdout()
    if not specs:
        task = f" serving {args.task}" if args.task else ""
        console.print(
            "no components match" + (f" {args.kind!r}" if args.kind else "") + f" {args.pattern!r}{task}"
        )
        return 0
    table = Table(title="mlbasics components", title_justify="left", show_lines=True)
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("kind", no_wrap=True)
    table.add_column("summary", ratio=3, overflow="fold")
    table.add_column("params (type = default, constraint)", ratio=3)
    table.add_column("plugin", no_wrap=True)
    for spec in specs:
        # Text, not markup strings: plugin-provided text such as "list[int]" must print as written.
        summary = Text(spec.summary)
        state = registry.status(spec)
        if len(spec.tasks) == 1:  # what it serves, where it is not both
            summary.append(f"\ntask: {task_label(spec)}", style="dim")
        if state != "available":  # in the summary, which wraps: the name column never does
            summary.append(f"\n{state}", style="yellow")
        params = Text("\n".join(format_param(p) for p in spec.params) or "-")
        table.add_row(Text(spec.name), spec.kind, summary, params, Text(plugin_label(spec)))
    console.print(table)
    return 0

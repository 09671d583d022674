"""The reference docs stay true to the code: every hook in docs/hooks.md with its signature, and every
built-in component in docs/components.md exactly as the registry reports it."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlbasics import hookspecs
from mlbasics.registry import Registry
from tests.conftest import builtins_only_env, run_main

DOCS = Path(__file__).parent.parent / "docs"
MARKER = "<!-- generated -->\n\n"
REGENERATE = (
    "{ sed '/^<!-- generated -->$/q' docs/components.md; echo; MLBASICS_PLUGINS=builtins mlbasics list "
    "--format markdown; } > components.md.new && mv components.md.new docs/components.md"
)


def hook_specifications() -> dict[str, Callable[..., Any]]:
    """Every hook mlbasics defines: the functions of mlbasics.hookspecs marked as hook specifications."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, marker)
    }


def signature_text(function: Callable[..., Any]) -> str:
    """``mlbasics_models() -> Iterable[ComponentSpec]``, written as in the source."""
    signature = inspect.signature(function)
    parameters = ", ".join(str(p).replace("'", "") for p in signature.parameters.values())
    return f"{function.__name__}({parameters}) -> {signature.return_annotation}"


def documented_hooks() -> dict[str, str]:
    """Hook name -> the signature in its ``## `...` `` heading in docs/hooks.md."""
    text = (DOCS / "hooks.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## `((mlbasics_\w+)\(.*\).*)`$", text, flags=re.MULTILINE)
    return {name: heading for heading, name in headings}


def test_the_hooks_are_found() -> None:
    # Guards the two tests below against passing vacuously.
    assert set(hook_specifications()) == set(hookspecs.HOOK_FOR_KIND.values())


@pytest.mark.parametrize("name", sorted(hook_specifications()))
def test_every_hook_is_documented_with_its_signature(name: str) -> None:
    documented = documented_hooks()
    assert name in documented, f"docs/hooks.md has no '## `{name}(...)`' section"
    assert documented[name] == signature_text(hook_specifications()[name]), (
        f"docs/hooks.md documents {documented[name]!r}, the code says {signature_text(hook_specifications()[name])!r}"
    )
    assert f"| `{name}` |" in (DOCS / "hooks.md").read_text(encoding="utf-8"), "missing from the table"


def test_no_documented_hook_is_missing_from_the_code() -> None:
    assert set(documented_hooks()) <= set(hook_specifications())


def test_every_builtin_component_is_in_the_reference() -> None:
    reference = (DOCS / "components.md").read_text(encoding="utf-8")
    missing = [
        f"{spec.kind} {spec.name}"
        for spec in Registry.isolated().specs()
        if f"| `{spec.name}` |" not in reference
    ]
    assert not missing, f"docs/components.md lacks {', '.join(missing)}; regenerate it: {REGENERATE}"


def test_the_component_reference_is_what_mlbasics_list_prints() -> None:
    # The built-ins only, whatever else is installed: the page documents what mlbasics itself ships.
    result = run_main("list", "--format", "markdown", env=builtins_only_env())
    assert result.returncode == 0, result.stderr
    reference = (DOCS / "components.md").read_text(encoding="utf-8")
    assert MARKER in reference, "docs/components.md lost its '<!-- generated -->' marker line"
    generated = reference.split(MARKER, 1)[1]
    assert generated == result.stdout, f"docs/components.md is out of date; regenerate it: {REGENERATE}"

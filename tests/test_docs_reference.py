"""The reference docs stay true to the code: every hook in docs/hooks.md with its signature, every
built-in component in docs/components.md exactly as the registry reports it, and every key of the
experiment format in docs/experiments.md with its type and default, its example loading."""

from __future__ import annotations

import inspect
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from mlbasics.core import hookspecs
from mlbasics.core.registry import MODEL_SIZE_PARAMS, Registry
from mlbasics.engine.experiment import LIST_KINDS, LR, Component, Experiment
from tests.conftest import builtins_only_env, run_main

DOCS = Path(__file__).parent.parent / "docs"
MARKER = "<!-- generated -->\n\n"
REGENERATE = (
    "{ sed '/^<!-- generated -->$/q' docs/components.md; echo; MLBASICS_PLUGINS=builtins mlbasics list "
    "--format markdown; } > components.md.new && mv components.md.new docs/components.md"
)


def hook_specifications() -> dict[str, Callable[..., Any]]:
    """Every hook mlbasics defines: the functions of mlbasics.core.hookspecs marked as hook specifications."""
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


# -- docs/experiments.md: the experiment format, key by key ------------------------------------------

#: How docs/experiments.md names the type of each kind of Experiment field (by its annotation).
#: A new field whose annotation is not here fails the test below: say there how the page names it.
TYPE_WORDS = {
    "Component": "component",
    "int": "integer",
    "int | None": "integer",
    "float": "float",
    "float | None": "float",
    "bool": "boolean",
    "bool | None": "boolean",
    "str": "string",
    "str | None": "string",
    "tuple[Component, ...]": "list of components",
}


def experiment_key_table() -> dict[str, tuple[str, str]]:
    """Key -> (type, default) from the table under '## Every key' of docs/experiments.md."""
    text = (DOCS / "experiments.md").read_text(encoding="utf-8")
    section = text.split("\n## Every key\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|", section, flags=re.MULTILINE)
    return {key: (kind.strip(), default.strip()) for key, kind, default in rows}


def documented_default(cell: str) -> Any:
    """``absent`` -> None; a TOML value in backticks -> that value."""
    if cell == "absent":
        return None
    assert cell[0] == cell[-1] == "`", f"a default is `a TOML value` or absent: {cell!r}"
    return tomllib.loads(f"value = {cell.strip('`')}")["value"]


def test_every_experiment_key_is_documented_with_its_type_and_default() -> None:
    fields = attrs.fields_dict(Experiment)
    table = experiment_key_table()
    missing, unknown = sorted(set(fields) - set(table)), sorted(set(table) - set(fields))
    assert not missing, f"docs/experiments.md's key table lacks Experiment fields: {', '.join(missing)}"
    assert not unknown, f"docs/experiments.md documents keys Experiment does not have: {', '.join(unknown)}"
    default = Experiment()
    for name, field in fields.items():
        word, cell = table[name]
        annotation = str(field.type)
        assert annotation in TYPE_WORDS, (
            f"Experiment.{name}: say in TYPE_WORDS how the page names {annotation}"
        )
        assert word == TYPE_WORDS[annotation], f"{name}: documented as {word!r}, is {annotation}"
        value = documented_default(cell)
        actual = getattr(default, name)
        if isinstance(actual, Component):
            assert Component.of(value) == actual, f"{name}: documented default {cell}, is {actual.to_dict()}"
        elif word == "list of components":
            assert tuple(Component.of(item) for item in value) == actual, (
                f"{name}: documented default {cell}, is {[c.to_dict() for c in actual]}"
            )
        else:
            assert (value, type(value)) == (actual, type(actual)), (
                f"{name}: documented default {cell}, is {actual!r}"
            )


def experiment_toml_blocks() -> list[str]:
    text = (DOCS / "experiments.md").read_text(encoding="utf-8")
    return re.findall(r"^```toml\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def test_the_pages_toml_names_only_keys_experiment_has() -> None:
    blocks = experiment_toml_blocks()
    assert len(blocks) >= 2  # the complete example and the component table
    fields = set(attrs.fields_dict(Experiment)) | {LR}  # and the one shortcut, the optimizer's lr
    for block in blocks:
        unknown = set(tomllib.loads(block)) - fields
        assert not unknown, f"docs/experiments.md writes keys Experiment does not have: {sorted(unknown)}"


def test_the_complete_example_loads_builds_and_round_trips(tmp_path: Path) -> None:
    example = experiment_toml_blocks()[0]
    assert set(tomllib.loads(example)) == set(attrs.fields_dict(Experiment)), "the example writes every key"
    path = tmp_path / "lecture.toml"
    path.write_text(example, encoding="utf-8")
    experiment = Experiment.load(path)
    assert experiment.problems() == []
    registry = Registry.isolated()
    for kind, component in experiment.components().items():
        sizes = (
            dict.fromkeys(MODEL_SIZE_PARAMS, 1) if kind == "model" else {}
        )  # prepare() gives the real ones
        assert registry.check(kind, component.name, sizes | component.params) == [], kind
    for field, kind in LIST_KINDS.items():
        for component in getattr(experiment, field):
            assert registry.check(kind, component.name, component.params) == [], f"{field}: {component}"
    assert Experiment.from_toml(experiment.to_toml()) == experiment
    experiment.save(tmp_path / "again.toml")
    assert Experiment.load(tmp_path / "again.toml") == experiment

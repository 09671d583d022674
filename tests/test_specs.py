"""Param and ComponentSpec: declaring, coercing and checking values; lazy factories."""

from __future__ import annotations

import sys

import pytest

from mlbasics import REQUIRED, ComponentSpec, Param, PluginError


def test_float_param_accepts_ints_and_checks_bounds() -> None:
    lr = Param(name="lr", type=float, default=0.01, gt=0)
    assert lr.coerce(1) == 1.0
    assert isinstance(lr.coerce(1), float)
    with pytest.raises(ValueError, match=r"must be > 0, got -1.0"):
        lr.coerce(-1)
    with pytest.raises(ValueError, match=r"expected float, got 'abc' \(str\)"):
        lr.coerce("abc")


@pytest.mark.parametrize("value", [True, 2.5, "3", None])
def test_int_param_rejects_non_integers(value: object) -> None:
    with pytest.raises(ValueError, match="expected int"):
        Param(name="n", type=int, default=1).coerce(value)


def test_bool_is_not_a_number() -> None:
    with pytest.raises(ValueError, match=r"expected float, got True \(bool\)"):
        Param(name="lr", type=float, default=0.1).coerce(True)


def test_non_finite_floats_are_rejected() -> None:
    with pytest.raises(ValueError, match="finite"):
        Param(name="lr", type=float, default=0.1).coerce(float("nan"))


def test_list_param_checks_items_and_length() -> None:
    hidden = Param(name="hidden", type=list[int], default=[6], ge=1, min_length=1)
    assert hidden.coerce((4, 5)) == [4, 5]
    with pytest.raises(ValueError, match="at least 1 item"):
        hidden.coerce([])
    with pytest.raises(ValueError, match=r"must be >= 1, got 0"):
        hidden.coerce([3, 0])
    with pytest.raises(ValueError, match=r"expected list\[int\], got 4"):
        hidden.coerce(4)


def test_choices_and_optional_values() -> None:
    mode = Param(name="mode", type=str, default=None, choices=["a", "b"])
    assert mode.coerce(None) is None
    assert mode.coerce("a") == "a"
    with pytest.raises(ValueError, match="one of a, b"):
        mode.coerce("c")


def test_constraint_descriptions() -> None:
    assert Param(name="lr", type=float, default=0.1, gt=0).constraint() == "> 0"
    assert Param(name="m", type=float, default=0.0, ge=0, lt=1).constraint() == ">= 0, < 1"
    hidden = Param(name="hidden", type=list[int], default=[1], ge=1, min_length=1)
    assert hidden.constraint() == "each >= 1, at least 1 item"
    assert (
        Param(name="act", type=str, default="relu", component="activation").constraint()
        == "a registered activation"
    )


def test_required_param() -> None:
    path = Param(name="path", type=str)
    assert path.required
    assert path.default is REQUIRED


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name", "type": int, "default": 1}, "lowercase Python identifier"),
        ({"name": "name", "type": int, "default": 1}, "reserved"),
        ({"name": "x", "type": dict, "default": None}, "param type must be one of"),
        ({"name": "lr", "type": float, "default": -1.0, "gt": 0}, "default of param 'lr' is invalid"),
        ({"name": "act", "type": str, "component": "layer"}, "param 'act': component must be one of"),
        (
            {"name": "acts", "type": list[str], "component": "activation"},
            "param 'acts': a component param names one component, so its type must be str, not list",
        ),
    ],
)
def test_invalid_param_declarations(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Param(**kwargs)  # type: ignore[arg-type]


def _spec(**overrides: object) -> ComponentSpec:
    fields: dict[str, object] = {
        "kind": "model",
        "name": "tiny-net",
        "factory": "collections:OrderedDict",
        "summary": "a model",
    }
    return ComponentSpec(**(fields | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": "layer"}, "kind"),
        ({"name": "Tiny Net"}, "component name"),
        ({"summary": "two\nlines"}, "one non-empty line"),
        ({"factory": "no_colon_here"}, "package.module:function"),
        ({"factory": 42}, "factory must be callable"),
        (
            {"params": [Param(name="a", type=int, default=1), Param(name="a", type=int, default=2)]},
            "declared twice",
        ),
    ],
)
def test_invalid_specs_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        _spec(**overrides)


def test_specs_are_frozen_and_hashable() -> None:
    spec = _spec(tags=["a"], params=[Param(name="a", type=int, default=1)])
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    assert spec.tags == frozenset({"a"})
    assert isinstance(spec.params, tuple)
    assert hash(spec) == hash(_spec(tags=["a"], params=[Param(name="a", type=int, default=1)]))


def test_string_factory_is_imported_only_when_loaded() -> None:
    sys.modules.pop("wave", None)
    spec = _spec(factory="wave:open")
    assert "wave" not in sys.modules
    assert callable(spec.load_factory())
    assert "wave" in sys.modules


def test_unimportable_factory_names_the_component() -> None:
    spec = _spec(factory="no_such_module_here:make")
    with pytest.raises(PluginError, match=r"model 'tiny-net' .* cannot be loaded: No module named"):
        spec.load_factory()


def test_missing_requirements_are_found_without_importing() -> None:
    spec = _spec(requires=["json", "surely_not_installed_anywhere"])
    assert spec.missing_requirements() == ("surely_not_installed_anywhere",)

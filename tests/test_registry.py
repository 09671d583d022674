"""The registry: listing, looking up and building components, and every way a request can be wrong."""

from __future__ import annotations

import importlib.metadata
import types

import pytest
import torch

from mlbasics import (
    ComponentSpec,
    Param,
    PluginError,
    Registry,
    UnknownComponentError,
    ValidationError,
    hookimpl,
)


def _plugin(*specs: ComponentSpec, name: str = "extra") -> types.SimpleNamespace:
    """A plugin object whose hooks return ``specs``, grouped by kind."""
    by_kind = {
        kind: [s for s in specs if s.kind == kind]
        for kind in ("dataset", "model", "activation", "loss", "optimizer")
    }
    hooks = {
        f"mlbasics_{'losses' if kind == 'loss' else kind + 's'}": hookimpl(lambda found=found: found)
        for kind, found in by_kind.items()
        if found
    }
    plugin = types.SimpleNamespace(**hooks)
    plugin.__name__ = name
    return plugin


def _activation(name: str, *, overrides: bool = False, **fields: object) -> ComponentSpec:
    return ComponentSpec(
        kind="activation",
        name=name,
        factory=torch.nn.Softsign,
        summary="softsign",
        overrides=overrides,
        **fields,
    )  # type: ignore[arg-type]


def test_lists_every_builtin_by_kind(registry: Registry) -> None:
    names = {(s.kind, s.name) for s in registry.specs()}
    assert names == {
        ("dataset", "attendance"),
        ("dataset", "tiny"),
        ("dataset", "scores"),
        ("dataset", "synthetic-linear"),
        ("dataset", "quadratic"),
        ("dataset", "csv"),
        ("dataset", "xor"),
        ("dataset", "blobs"),
        ("dataset", "spirals"),
        ("model", "linear"),
        ("model", "logistic"),
        ("model", "mlp"),
        ("model", "linear-stack"),
        ("activation", "relu"),
        ("activation", "sigmoid"),
        ("activation", "tanh"),
        ("activation", "identity"),
        ("loss", "mse"),
        ("loss", "sse-half"),
        ("loss", "cross-entropy"),
        ("loss", "binary-cross-entropy"),
        ("optimizer", "sgd"),
        ("optimizer", "lstsq"),
        ("metric", "mse"),
        ("metric", "rmse"),
        ("metric", "mae"),
        ("metric", "max-error"),
        ("metric", "r2"),
        ("metric", "explained-variance"),
        ("metric", "accuracy"),
        ("metric", "balanced-accuracy"),
        ("metric", "precision"),
        ("metric", "recall"),
        ("metric", "f1"),
        ("metric", "log-loss"),
        ("metric", "top-k-accuracy"),
        ("callback", "checkpoint"),
        ("callback", "csv-logger"),
        ("callback", "divergence-check"),
        ("callback", "early-stopping"),
        ("callback", "jsonl-logger"),
        ("callback", "lr-cosine"),
        ("callback", "lr-plateau"),
        ("callback", "lr-step"),
        ("callback", "progress-bar"),
    }


def test_list_by_kind_and_glob(registry: Registry) -> None:
    assert [s.name for s in registry.specs("models")] == ["linear", "linear-stack", "logistic", "mlp"]
    assert [s.name for s in registry.specs("model", "lin*")] == ["linear", "linear-stack"]
    assert [s.name for s in registry.specs(pattern="*s*")] == [
        "blobs",
        "csv",
        "scores",
        "spirals",
        "synthetic-linear",
        "linear-stack",
        "logistic",
        "sigmoid",
        "binary-cross-entropy",
        "cross-entropy",
        "mse",
        "sse-half",
        "lstsq",
        "sgd",
        "log-loss",  # the metrics, after the optimizers
        "mse",
        "precision",
        "rmse",
        "csv-logger",  # then the callbacks
        "early-stopping",
        "jsonl-logger",
        "lr-cosine",
        "lr-step",
        "progress-bar",
    ]


def test_unknown_kind_suggests_the_right_one(registry: Registry) -> None:
    with pytest.raises(ValidationError, match=r"unknown component kind 'modle'; did you mean 'model'\?"):
        registry.specs("modle")


def test_unknown_name_suggests_close_names(registry: Registry) -> None:
    with pytest.raises(UnknownComponentError, match=r"^unknown model 'mpl'; did you mean 'mlp'\?$"):
        registry.get("model", "mpl")


def test_unknown_name_without_close_match_lists_the_names(registry: Registry) -> None:
    with pytest.raises(
        UnknownComponentError,
        match=r"unknown loss 'huber'; available: binary-cross-entropy, cross-entropy, mse, sse-half",
    ):
        registry.get("loss", "huber")


def test_build_validates_before_the_factory_runs() -> None:
    calls = []
    spec = ComponentSpec(
        kind="loss",
        name="counted",
        factory=lambda **kw: calls.append(kw),
        summary="s",
        params=[Param(name="scale", type=float, default=1.0, gt=0)],
    )
    registry = Registry.isolated(_plugin(spec))
    with pytest.raises(ValidationError):
        registry.build("loss", "counted", scale=-1.0)
    assert calls == []
    registry.build("loss", "counted", scale=2)
    assert calls == [{"scale": 2.0}]


def test_all_problems_of_one_build_are_reported_together(registry: Registry) -> None:
    with pytest.raises(ValidationError) as error:
        registry.build("optimizer", "sgd", [], lr=-1, momentm=0.9, weight_decay="lots")
    assert error.value.problems == (
        "optimizer 'sgd': unknown param 'momentm'; did you mean 'momentum'?",
        "optimizer 'sgd': param 'lr' must be > 0, got -1.0",
        "optimizer 'sgd': param 'weight_decay' expected float, got 'lots' (str)",
    )


def test_unknown_param_without_close_match_lists_the_params(registry: Registry) -> None:
    with pytest.raises(
        ValidationError, match=r"optimizer 'sgd': unknown param 'beta'; it takes: lr, momentum, weight_decay"
    ):
        registry.build("optimizer", "sgd", [], beta=0.9)
    with pytest.raises(ValidationError, match=r"loss 'mse': unknown param 'reduction'; it takes no params"):
        registry.build("loss", "mse", reduction="sum")


def test_required_param_and_model_sizes(registry: Registry) -> None:
    with pytest.raises(ValidationError) as error:
        registry.build("dataset", "csv")
    assert error.value.problems == ("dataset 'csv': param 'path' is required",)
    with pytest.raises(ValidationError, match=r"model 'linear': in_features is required"):
        registry.build("model", "linear")
    with pytest.raises(ValidationError, match=r"model 'linear': in_features must be an integer >= 1, got 0"):
        registry.build("model", "linear", in_features=0)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"hidden": []}, "model 'mlp': param 'hidden' needs at least 1 item(s), got 0"),
        ({"hidden": [4, 0]}, "model 'mlp': param 'hidden' must be >= 1, got 0"),
        ({"hidden": [4, 2.5]}, "model 'mlp': param 'hidden' expected list[int], got 2.5 (float)"),
        (
            {"activation": "rellu"},
            "model 'mlp': param 'activation': unknown activation 'rellu'; did you mean 'relu'?",
        ),
        ({"activaton": "tanh"}, "model 'mlp': unknown param 'activaton'; did you mean 'activation'?"),
    ],
)
def test_mlp_param_problems(registry: Registry, params: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError) as error:
        registry.build("model", "mlp", in_features=1, **params)
    assert error.value.problems == (problem,)


def test_component_params_reach_the_factory_as_builders(registry: Registry) -> None:
    model = registry.build("model", "mlp", in_features=2, out_features=3, hidden=[4, 5], activation="tanh")
    assert [type(layer).__name__ for layer in model] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert model[1] is not model[3]  # a fresh activation for every gap
    assert model(torch.zeros(7, 2)).shape == (7, 3)


def test_resolve_fills_in_defaults(registry: Registry) -> None:
    spec, values = registry.resolve("optimizer", "sgd", {"lr": 1})
    assert spec.name == "sgd"
    assert values == {"lr": 1.0, "momentum": 0.0, "weight_decay": 0.0}


def test_same_name_from_two_plugins_is_an_error_naming_both() -> None:
    registry = Registry.isolated(_plugin(_activation("relu"), name="fancy"), strict=False)
    # The built-ins, installed as mlbasics' own entry point, are named with their distribution.
    both = r"activation 'relu' is provided by both builtins \(mlbasics [^)]+\) and fancy;"
    with pytest.raises(PluginError, match=both):
        registry.get("activation", "relu")
    assert {registry.status(s) for s in registry.specs("activation", "relu")} == {"conflict"}
    assert registry.get("activation", "tanh")  # everything else keeps working


def test_conflicts_raise_at_load_in_strict_mode() -> None:
    with pytest.raises(PluginError, match="provided by both"):
        Registry.isolated(_plugin(_activation("relu"), name="fancy")).specs()


def test_an_explicit_override_replaces_the_builtin() -> None:
    registry = Registry.isolated(_plugin(_activation("relu", overrides=True), name="fancy"))
    spec = registry.get("activation", "relu")
    assert spec.plugin is not None
    assert spec.plugin.name == "fancy"
    assert isinstance(registry.build("activation", "relu"), torch.nn.Softsign)
    statuses = {s.plugin.name: registry.status(s) for s in registry.specs("activation", "relu") if s.plugin}
    assert statuses == {"builtins": "overridden", "fancy": "available"}


def test_unavailable_component_says_what_to_install() -> None:
    spec = _activation(
        "needs-extra", requires=["surely_missing_module_abc"], install_hint="pip install extra"
    )
    registry = Registry.isolated(_plugin(spec))
    assert registry.status(registry.specs("activation", "needs-extra")[0]) == (
        "unavailable: needs surely_missing_module_abc (pip install extra)"
    )
    with pytest.raises(
        PluginError, match=r"is unavailable: needs surely_missing_module_abc; pip install extra"
    ):
        registry.build("activation", "needs-extra")


def test_isolated_registry_sees_no_installed_plugins() -> None:
    registry = Registry.isolated(builtins=False)
    assert registry.specs() == []
    assert registry.records == []


def test_list_by_plugin() -> None:
    registry = Registry.isolated(_plugin(_activation("softsign"), name="extra"))
    assert [(s.kind, s.name) for s in registry.specs(plugin="extra")] == [("activation", "softsign")]
    assert [s.name for s in registry.specs("activation", plugin="builtins")] == [
        "identity",
        "relu",
        "sigmoid",
        "tanh",
    ]
    with pytest.raises(ValidationError) as raised:  # not an empty list, which would look like "none"
        registry.specs(plugin="nobody")
    assert (
        str(raised.value) == "specs(plugin='nobody'): no plugin is named 'nobody' (plugins: builtins, extra)"
    )
    with pytest.raises(ValidationError, match=r"no plugin is named 'extr'; did you mean 'extra'\?"):
        registry.specs("activation", plugin="extr")


def test_an_installed_plugin_s_module_name_still_finds_it_with_a_deprecation_warning() -> None:
    """Before 0.2 an isolated registry named an installed plugin after its module; its entry-point
    name is right, and the module's name keeps working for one minor version, saying which to use."""
    import mlbasics.builtin

    registry = Registry.isolated(mlbasics.builtin, builtins=False)
    with pytest.warns(DeprecationWarning, match="mlbasics.builtin") as warned:
        by_module = registry.specs("model", plugin="mlbasics.builtin")
    assert by_module == registry.specs("model", plugin="builtins") != []
    [warning] = warned
    assert str(warning.message) == (
        "specs(plugin='mlbasics.builtin'): 'mlbasics.builtin' is the module of plugin 'builtins', which is "
        "named after its entry point; use specs(plugin='builtins') (a module's name stops working in "
        "mlbasics 0.3)"
    )
    assert warning.filename == __file__  # it points at the caller's line


def test_an_installed_plugin_has_its_entry_point_name_in_an_isolated_registry() -> None:
    """Given as a module, a plugin that is installed (here: mlbasics' own built-ins) is named after
    its entry point and carries its distribution, as when it is loaded as installed; a module that
    is not installed keeps its module name."""
    import mlbasics.builtin

    installed = next(ep for ep in importlib.metadata.entry_points(group="mlbasics") if ep.name == "builtins")
    registry = Registry.isolated(mlbasics.builtin, builtins=False)
    [record] = registry.records
    assert (record.info.name, record.info.distribution, record.info.version) == (
        "builtins",
        "mlbasics",
        importlib.metadata.version("mlbasics"),
    )
    assert installed.value == "mlbasics.builtin"
    assert registry.specs(plugin="builtins") == Registry.isolated().specs()
    module = types.ModuleType("not_installed_plugin")
    module.mlbasics_losses = lambda: [  # type: ignore[attr-defined]
        ComponentSpec(kind="loss", name="half", factory=lambda: None, summary="nothing")
    ]
    module.mlbasics_losses = hookimpl(module.mlbasics_losses)  # type: ignore[attr-defined]
    plain = Registry.isolated(module, builtins=False)
    assert [(r.info.name, r.info.distribution) for r in plain.records] == [("not_installed_plugin", None)]
    assert [s.name for s in plain.specs(plugin="not_installed_plugin")] == ["half"]

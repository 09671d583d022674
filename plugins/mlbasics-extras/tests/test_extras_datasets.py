"""The datasets: generated curves follow their formula, Anscombe's quartet is the published one."""

from __future__ import annotations

import statistics

import pytest
import torch

from mlbasics import ComponentSpec, Dataset, Registry, ValidationError


def test_the_plugin_provides_its_components(plugin_specs: list[ComponentSpec]) -> None:
    assert sorted((s.kind, s.name) for s in plugin_specs) == [
        ("activation", "elu"),
        ("activation", "gelu"),
        ("activation", "leaky-relu"),
        ("activation", "silu"),
        ("activation", "softplus"),
        ("dataset", "anscombe"),
        ("dataset", "breast-cancer"),
        ("dataset", "diabetes"),
        ("dataset", "digits"),
        ("dataset", "iris"),
        ("dataset", "polynomial"),
        ("dataset", "sine"),
        ("dataset", "wine"),
        ("model", "polynomial"),
    ]
    assert all(isinstance(s.factory, str) for s in plugin_specs)  # imported only when built


def test_polynomial_default_is_the_lecture_curve(registry: Registry) -> None:
    data = registry.build("dataset", "polynomial")
    assert isinstance(data, Dataset)
    assert data.features.shape == (200, 1)
    x = data.features
    torch.testing.assert_close(data.targets, x**2 + 3)
    assert float(x.min()) >= -2.0
    assert float(x.max()) <= 2.0


def test_polynomial_coefficients_start_with_the_constant(registry: Registry) -> None:
    data = registry.build("dataset", "polynomial", coefficients=[1.0, -2.0, 0.0, 0.5], n=50, low=-1, high=3)
    x = data.features.double()
    torch.testing.assert_close(data.targets.double(), 1 - 2 * x + 0.5 * x**3, rtol=1e-5, atol=1e-5)
    assert float(data.features.min()) >= -1.0
    assert float(data.features.max()) <= 3.0


def test_sine_follows_its_formula(registry: Registry) -> None:
    data = registry.build("dataset", "sine", amplitude=2.0, frequency=3.0, phase=0.5, n=64)
    torch.testing.assert_close(data.targets, 2.0 * torch.sin(3.0 * data.features + 0.5))


@pytest.mark.parametrize("name", ["polynomial", "sine"])
def test_generated_data_depends_on_the_seed_only(registry: Registry, name: str) -> None:
    first = registry.build("dataset", name, seed=3, noise=0.1)
    again = registry.build("dataset", name, seed=3, noise=0.1)
    other = registry.build("dataset", name, seed=4, noise=0.1)
    assert torch.equal(first.features, again.features)
    assert torch.equal(first.targets, again.targets)
    assert not torch.equal(first.features, other.features)


def test_noise_has_the_requested_spread(registry: Registry) -> None:
    clean = registry.build("dataset", "sine", n=5000)
    noisy = registry.build("dataset", "sine", n=5000, noise=0.5)
    assert torch.equal(clean.features, noisy.features)  # x is drawn first, from the same seed
    assert float((noisy.targets - clean.targets).std()) == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize("name", ["polynomial", "sine"])
def test_an_empty_interval_is_refused(registry: Registry, name: str) -> None:
    with pytest.raises(
        ValidationError, match=rf"dataset '{name}': low must be below high, got low=1.0 and high=1.0"
    ):
        registry.build("dataset", name, low=1.0, high=1.0)


# The published facts of F. J. Anscombe's 1973 quartet: the same summary statistics and the same
# least-squares line for four very different tables.
@pytest.mark.parametrize("which", [1, 2, 3, 4])
def test_anscombe_tables_share_their_statistics(registry: Registry, which: int) -> None:
    data = registry.build("dataset", "anscombe", which=which)
    assert data.features.shape == (11, 1)
    x, y = data.features[:, 0].tolist(), data.targets[:, 0].tolist()
    assert statistics.mean(x) == pytest.approx(9.0)
    assert statistics.variance(x) == pytest.approx(11.0)
    assert statistics.mean(y) == pytest.approx(7.50, abs=0.005)
    assert statistics.variance(y) == pytest.approx(4.125, abs=0.005)
    assert statistics.correlation(x, y) == pytest.approx(0.816, abs=0.001)
    slope, intercept = statistics.linear_regression(x, y)
    assert (slope, intercept) == (pytest.approx(0.500, abs=0.001), pytest.approx(3.00, abs=0.005))


def test_anscombe_tables_differ(registry: Registry) -> None:
    tables = [registry.build("dataset", "anscombe", which=k) for k in (1, 2, 3, 4)]
    assert len({tuple(t.targets[:, 0].tolist()) for t in tables}) == 4
    assert sorted(set(tables[3].features[:, 0].tolist())) == [8.0, 19.0]  # IV: one x is not 8


def test_anscombe_has_four_tables(registry: Registry) -> None:
    with pytest.raises(ValidationError, match=r"dataset 'anscombe': param 'which' must be <= 4, got 5"):
        registry.build("dataset", "anscombe", which=5)


def test_lstsq_finds_anscombes_line(registry: Registry) -> None:
    import mlbasics

    result = mlbasics.train(
        dataset={"name": "anscombe", "which": 3}, model="linear", optimizer="lstsq", registry=registry
    )
    assert float(result.parameters["weight"][0, 0]) == pytest.approx(0.4997, abs=1e-3)
    assert float(result.parameters["bias"][0]) == pytest.approx(3.0025, abs=1e-3)


def _sklearn_installed() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def test_diabetes_needs_scikit_learn(registry: Registry) -> None:
    spec = next(s for s in registry.specs("dataset") if s.name == "diabetes")
    assert spec.requires == ("sklearn",)
    if _sklearn_installed():
        data = registry.build("dataset", "diabetes")
        assert (data.features.shape, data.targets.shape) == ((442, 10), (442, 1))
        assert data.feature_names[:3] == ("age", "sex", "bmi")
        assert registry.status(spec) == "available"
    else:
        assert registry.status(spec) == "unavailable: needs sklearn (pip install 'mlbasics-extras[sklearn]')"
        problems = registry.check("dataset", "diabetes")
        assert problems == [
            "dataset 'diabetes' from plugin extras (mlbasics-extras 0.1.0) is unavailable: needs sklearn; "
            "pip install 'mlbasics-extras[sklearn]'"
        ]

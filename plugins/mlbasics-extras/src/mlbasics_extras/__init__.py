"""mlbasics-extras: datasets (real tables for regression and classification among them), a model and
activations a student reaches for after the lecture.

Only hooks and specs live here (no torch import), so ``mlbasics list`` stays fast; factories are
``"module:function"`` strings imported when a component is built.
"""

from __future__ import annotations

from mlbasics import ComponentSpec, Param, hookimpl

_HERE = __name__

_N = Param(name="n", type=int, default=200, ge=1, help="number of samples")
_NOISE = Param(name="noise", type=float, default=0.0, ge=0, help="standard deviation of the noise")
_SEED = Param(name="seed", type=int, default=0, ge=0, help="seed of the generator that draws the data")


def _interval(low: float, high: float) -> tuple[Param, Param]:
    return (
        Param(name="low", type=float, default=low, help="smallest x (x is drawn uniformly)"),
        Param(name="high", type=float, default=high, help="largest x; must be above low"),
    )


@hookimpl
def mlbasics_datasets() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            kind="dataset",
            name="polynomial",
            factory=f"{_HERE}.datasets:polynomial",
            summary="y = c0 + c1·x + c2·x² + … (+ noise), x uniform in [low, high]; default y = x² + 3",
            params=(
                Param(
                    name="coefficients",
                    type=list[float],
                    default=[3.0, 0.0, 1.0],
                    min_length=1,
                    help="c0, c1, c2, ...: the constant first",
                ),
                _N,
                *_interval(-2.0, 2.0),
                _NOISE,
                _SEED,
            ),
        ),
        ComponentSpec(
            kind="dataset",
            name="sine",
            factory=f"{_HERE}.datasets:sine",
            summary="y = amplitude·sin(frequency·x + phase) (+ noise), x uniform in [low, high]",
            params=(
                Param(name="amplitude", type=float, default=1.0, help="height of the wave"),
                Param(name="frequency", type=float, default=1.0, gt=0, help="angular frequency"),
                Param(name="phase", type=float, default=0.0, help="shift, in radians"),
                _N,
                *_interval(-3.0, 3.0),
                _NOISE,
                _SEED,
            ),
        ),
        ComponentSpec(
            kind="dataset",
            name="anscombe",
            factory=f"{_HERE}.datasets:anscombe",
            summary="Anscombe's quartet: four 11-point tables with the same line y = 3 + 0.5x",
            params=(
                Param(
                    name="which", type=int, default=1, ge=1, le=4, help="which of the four tables (I to IV)"
                ),
            ),
        ),
        ComponentSpec(
            kind="dataset",
            name="diabetes",
            factory=f"{_HERE}.datasets:diabetes",
            summary="Disease progression of 442 diabetes patients from 10 measurements (scikit-learn's table)",
            params=(
                Param(
                    name="scaled",
                    type=bool,
                    default=True,
                    help="features centred and scaled, as scikit-learn ships them",
                ),
            ),
            requires=("sklearn",),
            install_hint="pip install 'mlbasics-extras[sklearn]'",
        ),
        *(
            ComponentSpec(
                kind="dataset",
                name=name,
                factory=f"{_HERE}.datasets:{name.replace('-', '_')}",
                summary=summary,
                requires=("sklearn",),
                install_hint="pip install 'mlbasics-extras[sklearn]'",
                tasks={"classification"},
            )
            for name, summary in _CLASSIFICATION_TABLES
        ),
    ]


#: The classification tables that ship inside scikit-learn (no download), by name.
_CLASSIFICATION_TABLES = (
    ("iris", "Fisher's iris flowers: 4 measurements -> setosa, versicolor or virginica (150 rows)"),
    ("digits", "Handwritten digits as 8x8 images, 64 pixel features -> 0 to 9 (1797 rows)"),
    ("wine", "13 chemical measurements of wines -> one of 3 cultivars (178 rows)"),
    ("breast-cancer", "30 features of cell nuclei in breast masses -> malignant or benign (569 rows)"),
)


@hookimpl
def mlbasics_models() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            kind="model",
            name="polynomial",
            factory=f"{_HERE}.models:polynomial",
            summary="H(x) = W·[x, x², …, x^degree] + b: still linear in its parameters",
            params=(
                Param(name="degree", type=int, default=2, ge=1, le=12, help="highest power of each feature"),
                Param(name="bias", type=bool, default=True, help="learn the bias b"),
            ),
        )
    ]


@hookimpl
def mlbasics_activations() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            kind="activation",
            name="gelu",
            factory=f"{_HERE}.activations:gelu",
            summary="x·Φ(x), Φ the standard normal CDF (torch.nn.GELU)",
            params=(
                Param(
                    name="approximate",
                    type=str,
                    default="none",
                    choices=("none", "tanh"),
                    help="exact, or the tanh approximation",
                ),
            ),
        ),
        ComponentSpec(
            kind="activation",
            name="leaky-relu",
            factory=f"{_HERE}.activations:leaky_relu",
            summary="max(0, x) + negative_slope·min(0, x): a ReLU whose negative side still learns",
            params=(Param(name="negative_slope", type=float, default=0.01, ge=0, help="slope for x < 0"),),
        ),
        ComponentSpec(
            kind="activation",
            name="silu",
            factory=f"{_HERE}.activations:silu",
            summary="x·σ(x), also called swish (torch.nn.SiLU)",
        ),
        ComponentSpec(
            kind="activation",
            name="softplus",
            factory=f"{_HERE}.activations:softplus",
            summary="log(1 + e^(beta·x)) / beta: a smooth ReLU",
            params=(
                Param(name="beta", type=float, default=1.0, gt=0, help="sharpness"),
                Param(
                    name="threshold", type=float, default=20.0, gt=0, help="linear above beta·x > threshold"
                ),
            ),
        ),
        ComponentSpec(
            kind="activation",
            name="elu",
            factory=f"{_HERE}.activations:elu",
            summary="x for x > 0, alpha·(e^x - 1) below (torch.nn.ELU)",
            params=(
                Param(name="alpha", type=float, default=1.0, gt=0, help="value approached as x -> -inf"),
            ),
        ),
    ]

"""Hypothesis strategies for mlbasics: tensors, linear stacks, datasets and component params.

Every argument takes a plain value or a Hypothesis strategy that draws one, so a test can pin down
what it does not care about and let Hypothesis explore the rest::

    tensors(dtype=torch.float64, shape=(3, 2))
    tensors(shape=shapes(max_dims=2), min_value=st.floats(-1, 0))
    linear_stacks(depth=st.integers(1, 6), sizes=st.integers(1, 8), dtype=torch.float32)
    params(registry.get("optimizer", "sgd"), lr=st.floats(1e-4, 0.1))

Plain values are checked when the strategy is made, drawn values when they are drawn; either way a
bad one raises ``hypothesis.errors.InvalidArgument`` naming the function and the argument.

Floats are *dtype-exact*: a float32 tensor is built from values that float32 represents exactly, so
Hypothesis shrinks and replays the very values the test saw. Subnormal numbers are left out by
default, because devices and fast paths treat them differently. Nothing here touches torch's global
random number generator: every value is drawn by Hypothesis, so a failure shrinks and replays.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, TypeVar

try:
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument
    from hypothesis.extra import numpy as hnp
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"mlbasics.testing.strategies needs Hypothesis and NumPy ({exc}); "
        "install them with: pip install 'mlbasics[test]'"
    ) from exc

import torch
from torch import nn

from mlbasics.core.registry import Registry, default_registry, suggest
from mlbasics.core.specs import ComponentSpec, Param
from mlbasics.data.dataset import Dataset, GroundTruth
from mlbasics.errors import DeviceError
from mlbasics.testing._ranges import available_names, closed, declared_range

T = TypeVar("T")
#: An argument that is either a value or a strategy drawing one.
MaybeStrategy: TypeAlias = T | st.SearchStrategy[T]

#: The default bound on drawn values: tensors hold numbers in [-10, 10] unless told otherwise.
DEFAULT_BOUND = 10.0
#: Numeric params without a bound on a side are drawn within this distance of the other bound (or of 0).
PARAM_SPAN = 100

_NUMPY_DTYPES: dict[torch.dtype, type[np.floating[Any]]] = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
}
_WIDTHS: dict[torch.dtype, int] = {torch.float16: 16, torch.float32: 32, torch.float64: 64}

Check: TypeAlias = Callable[[Any], "str | None"]

# Module-level defaults (strategies are immutable, so sharing them is safe).
DEPTHS = st.integers(1, 6)
LAYER_SIZES = st.integers(1, 8)
SAMPLE_COUNTS = st.integers(1, 16)
FEATURE_COUNTS = st.integers(1, 5)
TRUE_BIASES = st.floats(-5.0, 5.0)
FEATURE_SCALES = st.floats(1.0, 2.0)


# -- checking arguments --------------------------------------------------------------------------


def _validate(function: str, argument: str, value: Any, check: Check) -> None:
    """Check a plain (non-strategy) argument now, where the mistake was made."""
    if isinstance(value, st.SearchStrategy):
        return
    problem = check(value)
    if problem:
        raise InvalidArgument(f"{function}({argument}={value!r}): {problem}")


def _draw(draw: st.DrawFn, function: str, argument: str, value: Any, check: Check) -> Any:
    """The argument's value: drawn (and checked) if it is a strategy, else the value itself."""
    if not isinstance(value, st.SearchStrategy):
        return value
    drawn = draw(value)
    problem = check(drawn)
    if problem:
        raise InvalidArgument(f"{function}({argument}=...): the strategy drew {drawn!r}, but {problem}")
    return drawn


def _float_dtype(value: Any) -> str | None:
    if value in _NUMPY_DTYPES:
        return None
    return "the dtype must be torch.float16, torch.float32 or torch.float64"


def _count(minimum: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            return f"it must be an int >= {minimum}"
        return None

    return check


def _optional_count(minimum: int) -> Check:
    count = _count(minimum)
    return lambda value: None if value is None else count(value)


def _finite(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "it must be a finite number"
    return None


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "it must be True or False"


def _shape(value: Any) -> str | None:
    if isinstance(value, tuple | list) and all(
        isinstance(side, int) and not isinstance(side, bool) and side >= 0 for side in value
    ):
        return None
    return "a shape must be a tuple of ints >= 0"


def _device(value: Any) -> str | None:
    from mlbasics.devices import resolve_device

    try:
        resolve_device(str(value) if isinstance(value, torch.device | str) else repr(value))
    except DeviceError as exc:
        return str(exc)
    return None


def _float_list(value: Any) -> str | None:
    if isinstance(value, list | tuple) and value and all(_finite(item) is None for item in value):
        return None
    return "it must be a non-empty list of finite numbers"


# -- numbers and tensors ---------------------------------------------------------------------------


def _inward(bound: float, dtype: torch.dtype, *, up: bool) -> float:
    """``bound`` rounded to the nearest value of ``dtype`` on the inside of the range, because
    Hypothesis insists that bounds be exactly representable at the width it draws."""
    kind = _NUMPY_DTYPES[dtype]
    rounded = kind(bound)
    if up and float(rounded) < bound:
        rounded = np.nextafter(rounded, kind(np.inf))
    if not up and float(rounded) > bound:
        rounded = np.nextafter(rounded, kind(-np.inf))
    return float(rounded)


def _float_strategy(
    dtype: torch.dtype, min_value: float, max_value: float, allow_subnormal: bool
) -> st.SearchStrategy[float]:
    low, high = _inward(min_value, dtype, up=True), _inward(max_value, dtype, up=False)
    if low > high:
        raise InvalidArgument(
            f"no {dtype} value lies between min_value={min_value} and max_value={max_value}"
        )
    width: Any = _WIDTHS[dtype]
    return st.floats(
        low, high, width=width, allow_nan=False, allow_infinity=False, allow_subnormal=allow_subnormal
    )


def floats(
    dtype: MaybeStrategy[torch.dtype] = torch.float32,
    *,
    min_value: MaybeStrategy[float] = -DEFAULT_BOUND,
    max_value: MaybeStrategy[float] = DEFAULT_BOUND,
    allow_subnormal: MaybeStrategy[bool] = False,
) -> st.SearchStrategy[float]:
    """Finite Python floats that ``dtype`` represents exactly, in ``[min_value, max_value]``."""
    for argument, value, check in (
        ("dtype", dtype, _float_dtype),
        ("min_value", min_value, _finite),
        ("max_value", max_value, _finite),
        ("allow_subnormal", allow_subnormal, _boolean),
    ):
        _validate("floats", argument, value, check)

    @st.composite
    def draw_float(draw: st.DrawFn) -> float:
        return draw(_floats_for(draw, "floats", dtype, min_value, max_value, allow_subnormal))

    return draw_float()


def _floats_for(
    draw: st.DrawFn, function: str, dtype: Any, min_value: Any, max_value: Any, allow_subnormal: Any
) -> st.SearchStrategy[float]:
    chosen = _draw(draw, function, "dtype", dtype, _float_dtype)
    low = _draw(draw, function, "min_value", min_value, _finite)
    high = _draw(draw, function, "max_value", max_value, _finite)
    if low > high:
        raise InvalidArgument(f"{function}(): min_value={low} is greater than max_value={high}")
    subnormal = _draw(draw, function, "allow_subnormal", allow_subnormal, _boolean)
    return _float_strategy(chosen, float(low), float(high), subnormal)


def shapes(
    *,
    min_dims: MaybeStrategy[int] = 1,
    max_dims: MaybeStrategy[int] = 3,
    min_side: MaybeStrategy[int] = 1,
    max_side: MaybeStrategy[int] = 8,
) -> st.SearchStrategy[tuple[int, ...]]:
    """Small tensor shapes: ``min_dims`` to ``max_dims`` dimensions of ``min_side`` to ``max_side``."""
    arguments = {"min_dims": min_dims, "max_dims": max_dims, "min_side": min_side, "max_side": max_side}
    for argument, value in arguments.items():
        _validate("shapes", argument, value, _count(0))

    @st.composite
    def draw_shape(draw: st.DrawFn) -> tuple[int, ...]:
        sizes = {k: _draw(draw, "shapes", k, v, _count(0)) for k, v in arguments.items()}
        if sizes["min_dims"] > sizes["max_dims"] or sizes["min_side"] > sizes["max_side"]:
            raise InvalidArgument(f"shapes(): empty range {sizes}")
        return draw(hnp.array_shapes(**sizes))

    return draw_shape()


def tensors(
    *,
    dtype: MaybeStrategy[torch.dtype] = torch.float32,
    shape: MaybeStrategy[Sequence[int]] | None = None,
    elements: st.SearchStrategy[float] | None = None,
    min_value: MaybeStrategy[float] = -DEFAULT_BOUND,
    max_value: MaybeStrategy[float] = DEFAULT_BOUND,
    allow_subnormal: MaybeStrategy[bool] = False,
    device: MaybeStrategy[str | torch.device] = "cpu",
) -> st.SearchStrategy[torch.Tensor]:
    """Floating-point tensors built from values drawn by Hypothesis (never from torch's RNG).

    ``shape`` defaults to :func:`shapes`; ``elements`` (a strategy of numbers that ``dtype``
    represents exactly) replaces the bounded default, :func:`floats` of ``dtype``.
    """
    shape = shapes() if shape is None else shape
    for argument, value, check in (
        ("dtype", dtype, _float_dtype),
        ("shape", shape, _shape),
        ("min_value", min_value, _finite),
        ("max_value", max_value, _finite),
        ("allow_subnormal", allow_subnormal, _boolean),
        ("device", device, _device),
    ):
        _validate("tensors", argument, value, check)
    if elements is not None and not isinstance(elements, st.SearchStrategy):
        raise InvalidArgument(f"tensors(elements={elements!r}): elements must be a strategy")

    @st.composite
    def draw_tensor(draw: st.DrawFn) -> torch.Tensor:
        chosen = _draw(draw, "tensors", "dtype", dtype, _float_dtype)
        return _tensor(
            draw,
            dtype=chosen,
            shape=tuple(_draw(draw, "tensors", "shape", shape, _shape)),
            elements=elements
            if elements is not None
            else _floats_for(draw, "tensors", chosen, min_value, max_value, allow_subnormal),
            device=_draw(draw, "tensors", "device", device, _device),
        )

    return draw_tensor()


def _tensor(
    draw: st.DrawFn,
    *,
    dtype: torch.dtype,
    shape: tuple[int, ...],
    elements: st.SearchStrategy[float],
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    array = draw(hnp.arrays(_NUMPY_DTYPES[dtype], shape, elements=elements))
    return torch.from_numpy(np.array(array, copy=True)).to(device)


def seeds() -> st.SearchStrategy[int]:
    """Seeds for ``torch.Generator().manual_seed`` or ``Experiment(seed=...)``: drawn by Hypothesis,
    so a failing seed shrinks (towards 0) and replays."""
    return st.integers(0, 2**32 - 1)


# -- models and datasets ---------------------------------------------------------------------------


def linear_stacks(
    *,
    depth: MaybeStrategy[int] = DEPTHS,
    sizes: MaybeStrategy[int] = LAYER_SIZES,
    in_features: MaybeStrategy[int] | None = None,
    out_features: MaybeStrategy[int] | None = None,
    bias: MaybeStrategy[bool] = True,
    dtype: MaybeStrategy[torch.dtype] = torch.float64,
    elements: st.SearchStrategy[float] | None = None,
    min_value: MaybeStrategy[float] = -2.0,
    max_value: MaybeStrategy[float] = 2.0,
    device: MaybeStrategy[str | torch.device] = "cpu",
) -> st.SearchStrategy[nn.Sequential]:
    """``nn.Sequential`` of ``depth`` ``nn.Linear`` layers with nothing between them.

    Each layer width is drawn from ``sizes`` (``in_features``/``out_features`` fix the first and last);
    ``bias`` is drawn once per layer. Weights and biases are drawn by Hypothesis, elementwise from
    ``elements`` or bounded floats of ``dtype``; nn.Linear's own random initialisation is skipped.
    """
    for argument, value, check in (
        ("depth", depth, _count(1)),
        ("sizes", sizes, _count(1)),
        ("in_features", in_features, _optional_count(1)),
        ("out_features", out_features, _optional_count(1)),
        ("bias", bias, _boolean),
        ("dtype", dtype, _float_dtype),
        ("min_value", min_value, _finite),
        ("max_value", max_value, _finite),
        ("device", device, _device),
    ):
        _validate("linear_stacks", argument, value, check)

    @st.composite
    def draw_stack(draw: st.DrawFn) -> nn.Sequential:
        name = "linear_stacks"
        layers = _draw(draw, name, "depth", depth, _count(1))
        widths = [_draw(draw, name, "sizes", sizes, _count(1)) for _ in range(layers + 1)]
        if in_features is not None:
            widths[0] = _draw(draw, name, "in_features", in_features, _count(1))
        if out_features is not None:
            widths[-1] = _draw(draw, name, "out_features", out_features, _count(1))
        chosen = _draw(draw, name, "dtype", dtype, _float_dtype)
        where = _draw(draw, name, "device", device, _device)
        values = (
            elements if elements is not None else _floats_for(draw, name, chosen, min_value, max_value, False)
        )
        stack = []
        for size_in, size_out in itertools.pairwise(widths):
            with_bias = _draw(draw, name, "bias", bias, _boolean)
            layer = nn.utils.skip_init(  # type: ignore[no-untyped-call]  # no RNG use: draws only
                nn.Linear, size_in, size_out, bias=with_bias, dtype=chosen, device=where
            )
            with torch.no_grad():
                layer.weight.copy_(_tensor(draw, dtype=chosen, shape=(size_out, size_in), elements=values))
                if layer.bias is not None:
                    layer.bias.copy_(_tensor(draw, dtype=chosen, shape=(size_out,), elements=values))
            stack.append(layer)
        return nn.Sequential(*stack)

    return draw_stack()


def datasets(
    *,
    n_samples: MaybeStrategy[int] = SAMPLE_COUNTS,
    n_features: MaybeStrategy[int] = FEATURE_COUNTS,
    n_targets: MaybeStrategy[int] = 1,
    elements: st.SearchStrategy[float] | None = None,
    min_value: MaybeStrategy[float] = -DEFAULT_BOUND,
    max_value: MaybeStrategy[float] = DEFAULT_BOUND,
) -> st.SearchStrategy[Dataset]:
    """Any regression table: :class:`mlbasics.Dataset` with float32 features (n, d) and targets (n, k)
    (k = ``n_targets``, 1 by default) drawn independently (so there need not be any relation between them)."""
    for argument, value, check in (
        ("n_samples", n_samples, _count(1)),
        ("n_features", n_features, _count(1)),
        ("n_targets", n_targets, _count(1)),
        ("min_value", min_value, _finite),
        ("max_value", max_value, _finite),
    ):
        _validate("datasets", argument, value, check)

    @st.composite
    def draw_dataset(draw: st.DrawFn) -> Dataset:
        n = _draw(draw, "datasets", "n_samples", n_samples, _count(1))
        d = _draw(draw, "datasets", "n_features", n_features, _count(1))
        k = _draw(draw, "datasets", "n_targets", n_targets, _count(1))
        values = (
            elements
            if elements is not None
            else _floats_for(draw, "datasets", torch.float32, min_value, max_value, False)
        )
        features = _tensor(draw, dtype=torch.float32, shape=(n, d), elements=values)
        targets = _tensor(draw, dtype=torch.float32, shape=(n, k), elements=values)
        return Dataset(features=features, targets=targets)

    return draw_dataset()


def linear_datasets(
    *,
    n_features: MaybeStrategy[int] | None = None,
    n_samples: MaybeStrategy[int] | None = None,
    weights: MaybeStrategy[Sequence[float]] | None = None,
    bias: MaybeStrategy[float] = TRUE_BIASES,
    feature_scales: MaybeStrategy[float] = FEATURE_SCALES,
) -> st.SearchStrategy[Dataset]:
    """Noise-free linear data y = X·weights + bias whose conditioning is known by construction.

    The feature columns are centred, mutually orthogonal, and column i has root-mean-square
    ``s_i`` (drawn from ``feature_scales``, one per column). So the Hessian of the MSE with respect
    to (weights, bias) is 2·diag(s_1², ..., s_d², 1): gradient descent with learning rate lr
    shrinks the error by at least max|1 - 2·lr·λ| per step over those eigenvalues λ/2, and least
    squares is well posed. The directions are drawn by Hypothesis: a drawn matrix M is
    orthogonalised against the ones vector (QR of [1 M], which stays orthogonal even if M is
    degenerate), so no draw is ever filtered out.

    ``n_features`` defaults to ``len(weights)`` for fixed weights, else 1 to 5; ``n_samples`` to
    ``n_features + 1`` to ``n_features + 16`` (the construction needs at least ``n_features + 1``);
    ``weights`` to floats in [-5, 5]. The dataset's ``ground_truth`` holds weights and bias.
    """
    for argument, value, check in (
        ("n_features", n_features, _optional_count(1)),
        ("n_samples", n_samples, _optional_count(2)),
        ("weights", weights, lambda v: None if v is None else _float_list(v)),
        ("bias", bias, _finite),
        ("feature_scales", feature_scales, _positive),
    ):
        _validate("linear_datasets", argument, value, check)

    @st.composite
    def draw_dataset(draw: st.DrawFn) -> Dataset:
        name = "linear_datasets"
        fixed = None if weights is None or isinstance(weights, st.SearchStrategy) else list(weights)
        default_d: Any = FEATURE_COUNTS if fixed is None else len(fixed)
        d = _draw(draw, name, "n_features", default_d if n_features is None else n_features, _count(1))
        if weights is None:
            true_weights = draw(st.lists(st.floats(-5.0, 5.0), min_size=d, max_size=d))
        else:
            true_weights = list(_draw(draw, name, "weights", weights, _float_list))
        if len(true_weights) != d:
            raise InvalidArgument(f"{name}(): {len(true_weights)} weights for n_features={d}")
        n = _draw(
            draw,
            name,
            "n_samples",
            st.integers(d + 1, d + 16) if n_samples is None else n_samples,
            _count(d + 1),
        )
        true_bias = float(_draw(draw, name, "bias", bias, _finite))
        scales = [float(_draw(draw, name, "feature_scales", feature_scales, _positive)) for _ in range(d)]
        directions = draw(hnp.arrays(np.float64, (n, d), elements=st.floats(-1.0, 1.0)))
        design = torch.cat([torch.ones(n, 1, dtype=torch.float64), torch.from_numpy(directions)], dim=1)
        basis = torch.linalg.qr(design).Q[:, 1:]  # orthonormal columns, orthogonal to the ones vector
        features = basis * math.sqrt(n) * torch.tensor(scales, dtype=torch.float64)
        targets = features @ torch.tensor(true_weights, dtype=torch.float64).unsqueeze(1) + true_bias
        return Dataset(
            features=features.float(),
            targets=targets.float(),
            ground_truth=GroundTruth(weights=tuple(true_weights), bias=true_bias),
        )

    return draw_dataset()


def _positive(value: Any) -> str | None:
    problem = _finite(value)
    return problem or (None if value > 0 else "it must be > 0")


# -- component params ------------------------------------------------------------------------------


def params(
    spec: ComponentSpec, *, registry: Registry | None = None, **overrides: Any
) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts of valid params for ``spec``, drawn from each declared :class:`~mlbasics.Param`'s type
    and constraints: bounds (on every item of a list), ``min_length``, ``choices``, and ``None``
    where the param is optional. A param naming another component draws one of ``registry``'s
    available components of that kind (default: :func:`mlbasics.default_registry`).

    A side without a bound stays within 100 of the other bound (or of 0), lists have at most 4
    items more than their ``min_length``, and a plain string is its default or a short word: pass
    ``name=value`` or ``name=strategy`` to draw a param your own way (e.g. ``path=...`` for a file).
    Every drawn dict is checked against the spec, so an override that draws an invalid value fails
    with the param's own message.
    """
    declared = {p.name: p for p in spec.params}
    where = f"params({spec.kind} {spec.name!r})"
    for key in overrides:
        if key not in declared:
            hint = suggest(key, declared) or (
                f"; it takes: {', '.join(declared)}" if declared else "; it takes no params"
            )
            raise InvalidArgument(f"{where}: no param {key!r}{hint}")
    strategies: dict[str, st.SearchStrategy[Any]] = {}
    for name, param in declared.items():
        if name in overrides:
            value = overrides[name]
            strategies[name] = value if isinstance(value, st.SearchStrategy) else st.just(value)
        else:
            strategies[name] = _param_strategy(param, registry, where)

    def checked(values: dict[str, Any]) -> dict[str, Any]:
        for name, value in values.items():
            try:
                values[name] = declared[name].coerce(value)
            except ValueError as exc:
                raise InvalidArgument(
                    f"{where}: drew {name}={value!r}, which the spec rejects: {exc}"
                ) from None
        return values

    return st.fixed_dictionaries(strategies).map(checked)


def _param_strategy(param: Param, registry: Registry | None, where: str) -> st.SearchStrategy[Any]:
    item = _item_strategy(param, registry, where)
    if param.is_list:
        low = param.min_length or 0
        values: st.SearchStrategy[Any] = st.lists(item, min_size=low, max_size=low + 4)
    else:
        values = item
    return st.none() | values if param.default is None else values


def _item_strategy(param: Param, registry: Registry | None, where: str) -> st.SearchStrategy[Any]:
    item_type = param.item_type
    if item_type is bool:
        return st.booleans()
    if item_type is str:
        if param.choices is not None:
            return st.sampled_from(param.choices)
        if param.component is not None:
            names = available_names(registry if registry is not None else default_registry(), param.component)
            if not names:
                raise InvalidArgument(
                    f"{where}: param {param.name!r} names a {param.component}, but none is registered"
                )
            return st.sampled_from(names)
        if isinstance(param.default, str):
            return st.just(param.default)
        return st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)
    span = declared_range(param)
    low, high = closed(span, PARAM_SPAN)
    if item_type is int:
        return st.integers(int(low), int(high))
    return st.floats(
        low,
        high,
        exclude_min=span.open_low,
        exclude_max=span.open_high,
        allow_nan=False,
        allow_infinity=False,
    )


__all__ = [
    "DEFAULT_BOUND",
    "MaybeStrategy",
    "datasets",
    "floats",
    "linear_datasets",
    "linear_stacks",
    "params",
    "seeds",
    "shapes",
    "tensors",
]

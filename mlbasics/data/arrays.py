"""Data held in memory -- NumPy arrays, torch tensors, nested lists, pandas DataFrames and Series --
as a :class:`~mlbasics.data.dataset.Dataset`, checked once on the way in.

Nothing is copied that need not be: a float32 NumPy array on the CPU becomes a tensor sharing its
memory (``torch.from_numpy``), a float32 tensor is used as it is, and anything else is converted to
float32 once. mlbasics never writes into the data, so a read-only array (a memory map) is shared
too. A 1-D array is one column. What is wrong with the data is one line that names it: features and
targets of different lengths, a NaN or an infinity (by row and column), columns that are not
numbers, empty tables, features of more than two dimensions, object arrays.

The functions that make a dataset take its class (``cls``, :class:`mlbasics.Dataset`), which calls
them as ``Dataset.from_arrays`` and ``Dataset.from_frame``; how an experiment records such data is
in :mod:`mlbasics.data.in_memory`.

pandas is never imported to find out whether a value is a DataFrame: only a value whose class comes
from pandas is read, with pandas' own methods.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
import numpy as np
import torch

from mlbasics.errors import DataError, ValidationError

if TYPE_CHECKING:
    from mlbasics.data.dataset import Dataset

D = TypeVar("D", bound="Dataset")

#: Values checked at a time for NaN and infinity: a large table is never copied whole, and each
#: block's mask (one byte a value) stays below the size malloc serves from fresh pages.
BLOCK_VALUES: Final = 1 << 16

Names = tuple[str, ...]

_DTYPE_KINDS: Final = {
    "O": "an object array",
    "U": "text",
    "S": "bytes",
    "c": "complex numbers",
    "M": "dates",
    "m": "time spans",
    "V": "structured records",
}


def pandas_kind(value: object) -> str | None:
    """``"DataFrame"`` or ``"Series"`` for pandas' own (and their subclasses), else ``None``."""
    for cls in type(value).__mro__:
        if cls.__module__.partition(".")[0] == "pandas" and cls.__name__ in ("DataFrame", "Series"):
            return cls.__name__
    return None


@attrs.frozen
class Table:
    """A table converted to a float32 tensor shaped (rows, columns), with its own column names (a
    DataFrame's, a Series') if it had any, and a way to say which row a row number is."""

    values: torch.Tensor
    names: Names | None = None
    row_label: Callable[[int], str] = str

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def columns(self) -> int:
        return int(self.values.shape[1])


def table(value: Any, what: str, *, features: bool = True) -> Table:
    """``value`` as a float32 table, shared where it can be (see the module's docstring); ``what``
    ("features", "validation targets") names it in messages. A 1-D value is one column."""
    kind = pandas_kind(value)
    if kind is not None:
        return _pandas_table(value, what, kind)
    values = _tensor(value, what) if isinstance(value, torch.Tensor) else _shared(_ndarray(value, what))
    return Table(_two_dimensional(values, what, features=features))


def _ndarray(value: Any, what: str) -> np.ndarray[Any, Any]:
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, str | bytes | dict) or value is None:
        raise ValidationError(
            [f"{what}: expected an array, a tensor or a list of rows, got {describe(value)}"]
        )
    else:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:  # rows of different lengths, mixed types
            raise DataError(
                f"{what}: cannot be read as a table of numbers ({str(exc).splitlines()[0]}); "
                "give rows of equal length"
            ) from None
    kind = array.dtype.kind
    if kind not in "fiub":
        described = _DTYPE_KINDS.get(kind, "not numbers")
        raise DataError(
            f"{what}: {described} (dtype {array.dtype}), not numbers; convert them to numbers first, "
            "e.g. np.asarray(X, dtype=np.float32)"
        )
    return array


def _shared(array: np.ndarray[Any, Any]) -> torch.Tensor:
    """A float32 tensor of ``array``: its own memory where torch can use it as it is (float32,
    native byte order, strides torch accepts), else one converted, C-contiguous copy."""
    if array.dtype == np.float32 and array.dtype.isnative and all(step >= 0 for step in array.strides):
        with warnings.catch_warnings():  # mlbasics reads the data, never writes them
            warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
            return torch.from_numpy(array)
    return torch.from_numpy(np.array(array, dtype=np.float32, order="C"))  # always a fresh copy


def _tensor(value: torch.Tensor, what: str) -> torch.Tensor:
    tensor = value.detach()
    if tensor.is_complex():
        raise DataError(f"{what}: complex numbers (dtype {tensor.dtype}); mlbasics trains on real numbers")
    return tensor if tensor.dtype == torch.float32 else tensor.to(torch.float32)


def _two_dimensional(values: torch.Tensor, what: str, *, features: bool) -> torch.Tensor:
    shape = tuple(values.shape)
    if values.ndim == 0:
        raise DataError(f"{what}: a single number, not a table; give one row per sample")
    if values.ndim == 1:
        values = values.unsqueeze(1)  # a view: one column
    elif values.ndim > 2:
        if features:
            raise DataError(
                f"{what}: {values.ndim}-D, shape {shape}; mlbasics' models take vectors, one row per "
                "sample: flatten each sample first, e.g. X.reshape(len(X), -1)"
            )
        raise DataError(f"{what}: {values.ndim}-D, shape {shape}; targets are 1-D or one column per target")
    if values.shape[0] == 0:
        raise DataError(f"{what}: empty (shape {shape}); there is nothing to train on")
    if values.shape[1] == 0:
        raise DataError(f"{what}: no columns (shape {shape})")
    return values


def _pandas_table(value: Any, what: str, kind: str) -> Table:
    import pandas  # the caller's DataFrame has imported it already

    columns = list(value.items()) if kind == "DataFrame" else [(value.name, value)]
    names = tuple(str(name) for name, _ in columns)
    numeric = pandas.api.types.is_numeric_dtype
    wrong = [
        (name, series.dtype)
        for name, (_, series) in zip(names, columns, strict=True)
        if not numeric(series.dtype) or pandas.api.types.is_complex_dtype(series.dtype)
    ]
    if wrong:
        shown = ", ".join(f"{name!r} ({dtype})" for name, dtype in wrong[:5])
        more = f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""
        which = f"column {shown} is" if len(wrong) == 1 else f"columns {shown}{more} are"
        raise DataError(
            f"{what}: {which} not numbers; encode them as numbers (e.g. pandas.get_dummies) or drop them"
        )
    # na_value only where a column may hold pandas.NA (nullable dtypes): it costs a second pass.
    nullable = any(not isinstance(series.dtype, np.dtype) for _, series in columns)
    extra = {"na_value": np.nan} if nullable else {}
    array = value.to_numpy(dtype=np.float32, **extra)
    index = value.index

    def row_label(row: int) -> str:
        label = index[row]
        return str(row) if label == row else f"{row} (index {label!r})"

    values = _two_dimensional(_shared(array), what, features=True)
    own = names if kind == "DataFrame" or value.name is not None else None
    return Table(values, own, row_label)


def check_finite(
    values: torch.Tensor, what: str, names: Sequence[str], row_label: Callable[[int], str] = str
) -> None:
    """Raise a :class:`DataError` naming the first row and column of ``values`` that is NaN or
    infinite; block by block, so that a large table is never copied whole."""
    if bool(torch.isfinite(values.sum())):  # NaN and inf carry into the sum: then every value is finite
        return
    rows = max(1, BLOCK_VALUES // max(1, int(values.shape[1])))  # find which (or the sum overflowed)
    for start in range(0, int(values.shape[0]), rows):
        block = values[start : start + rows]
        finite = torch.isfinite(block)
        if bool(finite.all()):
            continue
        row, column = (~finite).nonzero()[0].tolist()
        value = float(block[row, column])
        described = "NaN (a missing value)" if math.isnan(value) else f"{value} (or too large for float32)"
        raise DataError(
            f"{what}: row {row_label(start + row)}, column {names[column]!r} is {described}; "
            "drop or fill such rows first (rows are counted from 0)"
        )


def _names(given: Sequence[str] | None, own: Names | None, count: int, what: str) -> Names | None:
    """The column names to use: those ``given``, else the table's own, else ``None`` (defaults)."""
    if given is not None:
        names = (given,) if isinstance(given, str) else tuple(given)
        if len(names) != count:
            raise ValidationError(
                [
                    f"{what}: {len(names)} name{'s' if len(names) != 1 else ''} for {count} column{'s' if count != 1 else ''}"
                ]
            )
        return names
    return own


def from_arrays(
    cls: type[D],
    features: Any,
    targets: Any,
    *,
    feature_names: Sequence[str] | None = None,
    target_names: Sequence[str] | None = None,
    validation: Any = None,
    test: Any = None,
    part: str = "",
) -> D:
    """A dataset (of class ``cls``) of ``features`` (n, d) and ``targets`` (n,) or (n, k): NumPy arrays, tensors,
    nested lists or pandas objects (whose column names are taken unless names are given).
    ``validation`` and ``test``: held-out rows as ``(features, targets)`` pairs or DataFrames."""
    prefix = f"{part} " if part else ""
    x = table(features, f"{prefix}features")
    y = table(targets, f"{prefix}targets", features=False)
    if x.rows != y.rows:
        raise DataError(
            f"{prefix}features have {x.rows} rows but {prefix}targets have {y.rows}; give one target "
            "row per feature row"
        )
    named: dict[str, Any] = {}
    feature_names_ = _names(feature_names, x.names, x.columns, f"{prefix}feature_names")
    if feature_names_ is not None:
        named["feature_names"] = feature_names_
    target_names_ = _names(target_names, y.names, y.columns, f"{prefix}target_names")
    if target_names_ is not None:
        named["target_names"] = target_names_
    dataset = cls(features=x.values, targets=y.values, **named)
    check_finite(x.values, f"{prefix}features", dataset.feature_names, x.row_label)
    check_finite(y.values, f"{prefix}targets", dataset.target_names, y.row_label)
    return with_held_out(dataset, validation=validation, test=test)


def from_frame(
    cls: type[D],
    frame: Any,
    target: str | Sequence[str],
    *,
    features: Sequence[str] | None = None,
    validation: Any = None,
    test: Any = None,
    part: str = "",
) -> D:
    """A dataset (of class ``cls``) of a pandas DataFrame's ``target`` column (or columns) and its ``features``
    columns (default: all the others), named as the frame names them."""
    what = f"{part} DataFrame" if part else "DataFrame"
    if pandas_kind(frame) != "DataFrame":
        raise ValidationError([f"{what}: expected a pandas DataFrame, got {describe(frame)}"])
    targets = [target] if isinstance(target, str) else list(target)
    if not targets:
        raise ValidationError([f"{what}: name at least one target column"])
    columns = [str(name) for name in frame.columns]
    by_name = dict(zip(columns, frame.columns, strict=True))
    chosen = list(features) if features is not None else [c for c in columns if c not in targets]
    for name in [*targets, *chosen]:
        if name not in by_name:
            raise DataError(f"{what} has no column {name!r}; its columns: {listed(columns)}")
    both = [name for name in targets if name in chosen]
    if both:
        raise DataError(f"{what}: column {both[0]!r} is both the target and a feature")
    if not chosen:
        label = ", ".join(repr(name) for name in targets)
        raise DataError(
            f"{what}: no feature columns besides the target{'s' if len(targets) > 1 else ''} {label}"
        )
    dataset = from_arrays(
        cls, frame[[by_name[c] for c in chosen]], frame[[by_name[c] for c in targets]], part=part
    )
    return with_held_out(dataset, validation=validation, test=test)


def with_held_out(dataset: D, *, validation: Any = None, test: Any = None) -> D:
    """``dataset`` with held-out ``validation`` / ``test`` rows (pairs or DataFrames holding its
    columns), each checked to have the training data's columns."""
    held: dict[str, Any] = {
        name: _held_out(value, dataset, name)
        for name, value in (("validation", validation), ("test", test))
        if value is not None
    }
    return attrs.evolve(dataset, **held) if held else dataset


def _held_out(value: Any, dataset: D, part: str) -> D:
    cls = type(dataset)
    if isinstance(value, cls):
        check_finite(value.features, f"{part} features", value.feature_names)
        check_finite(value.targets, f"{part} targets", value.target_names)
        held = value
    elif pandas_kind(value) == "DataFrame":
        columns = {"features": list(dataset.feature_names)}
        held = from_frame(cls, value, list(dataset.target_names), **columns, part=part)
    elif isinstance(value, tuple | list) and len(value) == 2:
        features, targets = value
        if pandas_kind(features) == "DataFrame":
            by_name = {str(c): c for c in features.columns}
            if set(by_name) >= set(dataset.feature_names):  # the training columns, in their order
                features = features[[by_name[name] for name in dataset.feature_names]]
        held = from_arrays(cls, features, targets, part=part)
    else:
        raise ValidationError(
            [
                f"{part}: expected a fraction of the rows, a (features, targets) pair or a DataFrame; got {describe(value)}"
            ]
        )
    if held.n_features != dataset.n_features or held.n_targets != dataset.n_targets:
        raise DataError(
            f"{part}: {held.n_features} feature and {held.n_targets} target column(s), but the training "
            f"data have {dataset.n_features} and {dataset.n_targets}"
        )
    names: dict[str, Any] = {"feature_names": dataset.feature_names, "target_names": dataset.target_names}
    return attrs.evolve(held, **names)


# -- inputs to predict ----------------------------------------------------------------------------


def prediction_rows(features: Any, feature_names: Sequence[str]) -> torch.Tensor:
    """Inputs to ``predict`` as a float32 tensor shaped (n, d): a table of n rows (array, tensor,
    nested list, DataFrame, whose columns are taken by name where it has the model's), one row of d
    values, or, for a model of one feature, numbers (a float, or one value per row)."""
    d = len(feature_names)
    shape_problem = f"predict needs rows of {d} feature value(s) ({', '.join(feature_names)})" + (
        ", or one value per row" if d == 1 else ""
    )
    if pandas_kind(features) == "DataFrame":
        by_name = {str(c): c for c in features.columns}
        if set(feature_names) <= set(by_name):
            features = features[[by_name[name] for name in feature_names]]
        elif set(feature_names) & set(by_name):
            missing = [name for name in feature_names if name not in by_name]
            raise ValidationError([f"{shape_problem}: the DataFrame lacks column(s) {listed(missing)}"])
    if isinstance(features, bool):
        raise ValidationError([f"{shape_problem}, got a bool"])
    if isinstance(features, int | float):
        features = [float(features)]
    what = "predict's input"
    try:
        if pandas_kind(features) is not None:
            values = table(features, what).values
        elif isinstance(features, torch.Tensor):
            values = _tensor(features, what)
        else:
            values = _shared(_ndarray(features, what))
    except (DataError, ValidationError) as exc:
        raise ValidationError([f"{shape_problem}: {str(exc).partition(': ')[2]}"]) from None
    if values.ndim == 0 and d == 1:
        values = values.reshape(1, 1)
    elif values.ndim == 1:
        if d == 1:
            values = values.unsqueeze(1)
        elif values.shape[0] == d:
            values = values.unsqueeze(0)
    if values.ndim != 2 or values.shape[1] != d:
        raise ValidationError([f"{shape_problem}, got shape {tuple(values.shape)}"])
    return values


def describe(value: Any) -> str:
    kind = type(value)
    name = (
        kind.__name__
        if kind.__module__ == "builtins"
        else f"{kind.__module__.partition('.')[0]}.{kind.__name__}"
    )
    shape = getattr(value, "shape", None)
    if isinstance(value, tuple | list):
        return f"a {name} of {len(value)} item{'s' if len(value) != 1 else ''}"
    return f"a {name} of shape {tuple(shape)}" if isinstance(shape, tuple | torch.Size) else f"a {name}"


def listed(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")

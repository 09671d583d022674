"""Data held in memory as an experiment's dataset: what :func:`mlbasics.train` takes as
``dataset=`` (:func:`as_dataset`), and how an experiment records it -- as the dataset ``in-memory``,
with the shapes, the column names and a SHA-256 of the values (:func:`record`). A run folder keeps
that record and never the data, which stay the caller's: ``predict`` needs only the folder, and
``resume`` takes the same arrays again and refuses others by their hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from mlbasics.core.specs import IN_MEMORY
from mlbasics.data.arrays import check_finite, describe, from_arrays, from_frame, listed, pandas_kind
from mlbasics.data.dataset import Dataset, data_fingerprint
from mlbasics.errors import ValidationError

#: The held-out parts a dataset in memory may bring (``validation=(X_val, y_val)``).
PARTS: Final = ("validation", "test")
#: What a dataset in memory may be given as, for messages.
ACCEPTED: Final = (
    "a (features, targets) pair of arrays, tensors or lists, a pandas DataFrame with target=..., "
    "a mlbasics.Dataset or a registered dataset's name"
)


def as_dataset(value: Any, *, target: str | Sequence[str] | None = None, what: str = "dataset") -> Dataset:
    """Any form of data in memory (:data:`ACCEPTED`) as a checked :class:`Dataset`."""
    if isinstance(value, Dataset):
        if target is not None:
            raise ValidationError(
                [f"target={target!r} names a DataFrame's target column; a Dataset has its targets"]
            )
        check_dataset(value)
        return value
    if pandas_kind(value) == "DataFrame":
        if target is None:
            columns = listed([str(name) for name in value.columns])
            raise ValidationError(
                [
                    f"{what}: a DataFrame needs its target column named, as in target='price' (its columns: {columns})"
                ]
            )
        return from_frame(Dataset, value, target)
    if target is not None:
        raise ValidationError(
            [
                f"target={target!r} names the target column of a DataFrame; {what} is not one: pass dataset=DATAFRAME"
            ]
        )
    if isinstance(value, tuple | list) and len(value) == 2:
        return from_arrays(Dataset, value[0], value[1])
    raise ValidationError([f"{what}: expected {ACCEPTED}; got {describe(value)}"])


def check_dataset(dataset: Dataset) -> None:
    """Check a ready-made :class:`Dataset` (and the parts it brings) for NaN and infinity."""
    for part, held in (("", dataset), *((p, getattr(dataset, p)) for p in PARTS)):
        if held is not None:
            prefix = f"{part} " if part else ""
            check_finite(held.features, f"{prefix}features", held.feature_names)
            check_finite(held.targets, f"{prefix}targets", held.target_names)


def record(dataset: Dataset) -> dict[str, Any]:
    """What an experiment records of data held in memory (the params of dataset ``in-memory``):
    shapes, column names and the SHA-256 of the values, of the held-out parts too."""
    recorded: dict[str, Any] = {
        "features": list(dataset.features.shape),
        "targets": list(dataset.targets.shape),
        "feature_names": list(dataset.feature_names),
        "target_names": list(dataset.target_names),
        "sha256": data_fingerprint(dataset.features, dataset.targets),
    }
    for part in PARTS:
        held: Dataset | None = getattr(dataset, part)
        if held is not None:
            recorded[f"{part}_rows"] = held.n_samples
            recorded[f"{part}_sha256"] = data_fingerprint(held.features, held.targets)
    return recorded


def described(params: dict[str, Any]) -> str:
    """The data an ``in-memory`` record stands for, in a few words: ``100 rows x 3 features -> price``."""
    shape = params.get("features") or [0, 0]
    rows, columns = [*shape, 0, 0][:2]
    targets = ", ".join(str(name) for name in params.get("target_names", []))
    held = [f"{params[f'{part}_rows']} {part}" for part in PARTS if f"{part}_rows" in params]
    extra = f" (+ {', '.join(held)} rows)" if held else ""
    return f"{rows} rows x {columns} feature{'s' if columns != 1 else ''} -> {targets}{extra}"


def missing_data_problem(params: dict[str, Any], call: str) -> str:
    """The line for an ``in-memory`` dataset read back from a file, without its data: what it was,
    and the Python ``call`` (``"mlbasics.train("``) that gives it again."""
    held = [part for part in PARTS if f"{part}_rows" in params]
    again = "dataset=(X, y)" + "".join(f", {part}=(X_{part}, y_{part})" for part in held)
    return (
        f"dataset {IN_MEMORY!r} is data that was held in memory ({described(params)}), which files do "
        f"not keep: give the same arrays again in Python, {call}{again})"
    )

"""What a dataset factory returns: features and targets, with names and (if known) the ground truth."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any, Final

import attrs
import torch

from mlbasics.errors import DataError


def _to_floats(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _to_names(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class GroundTruth:
    """The parameters that generated a synthetic dataset: y = X·weights + bias (+ noise)."""

    weights: tuple[float, ...] = attrs.field(converter=_to_floats)
    bias: float


def _check_features(instance: Any, _: attrs.Attribute[Any], value: torch.Tensor) -> None:
    if not isinstance(value, torch.Tensor) or value.ndim != 2:
        raise ValueError(f"features must be a 2-D tensor (n, d), got {_shape(value)}")
    if value.dtype != torch.float32:
        raise ValueError(f"features must be float32, got {value.dtype}")


#: The most classes a dataset may have. Ten thousand is ten times ImageNet's thousand; a column with
#: more distinct labels is almost certainly not a column of class labels (an id, a measurement).
MAX_CLASSES: Final = 10_000


def _check_targets(instance: Dataset, _: attrs.Attribute[Any], value: torch.Tensor) -> None:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"targets must be a tensor, got {_shape(value)}")
    if instance.classes is not None:
        if value.ndim != 1 or value.dtype != torch.int64:
            raise ValueError(
                f"class targets must be int64 class indices shaped (n,), got {value.dtype} {_shape(value)}"
            )
        if len(value) and (int(value.min()) < 0 or int(value.max()) >= len(instance.classes)):
            raise ValueError(
                f"class targets must be indices into the {len(instance.classes)} classes, "
                f"0 to {len(instance.classes) - 1}; got {int(value.min())} to {int(value.max())}"
            )
    elif value.ndim != 2 or value.shape[1] < 1:
        raise ValueError(f"targets must be a tensor shaped (n, k), k >= 1, got {_shape(value)}")
    elif value.dtype != torch.float32:
        raise ValueError(f"targets must be float32, got {value.dtype}")
    if value.shape[0] != instance.features.shape[0]:
        raise ValueError(f"{instance.features.shape[0]} feature rows but {value.shape[0]} targets")


def _to_classes(values: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def _check_classes(_: Any, __: attrs.Attribute[Any], value: tuple[str, ...] | None) -> None:
    if value is None:
        return
    if not all(isinstance(name, str) and name for name in value):
        raise ValueError("class names must be non-empty strings")
    if len(value) < 2:
        raise ValueError(f"a classification dataset needs at least two classes, got {list(value)}")
    if len(value) > MAX_CLASSES:
        raise ValueError(f"{len(value):,} classes; a dataset has at most {MAX_CLASSES:,}")
    if len(set(value)) != len(value):
        repeated = sorted({name for name in value if value.count(name) > 1})
        raise ValueError(f"class {repeated[0]!r} is named twice")


#: Rows hashed at a time by :func:`data_fingerprint`: a memory-mapped table is never copied whole.
FINGERPRINT_ROWS = 1 << 16

_SAFETENSORS_DTYPE = {torch.float32: "F32", torch.int64: "I64"}


def data_fingerprint(
    features: torch.Tensor, targets: torch.Tensor, classes: Sequence[str] | None = None
) -> str:
    """A SHA-256 of the data's values, so resuming on changed data is noticed.

    It is the hash of the two tensors saved as one safetensors file (features, then targets), as it
    has always been, but computed block by block: the header first, then the rows, so a table larger
    than memory (memory-mapped) is hashed without being copied. Class labels add their names (in
    order) at the end: the same indices under other names are other data."""
    hasher = hashlib.sha256(_safetensors_header({"features": features, "targets": targets}))
    for tensor in (features, targets):
        for start in range(0, int(tensor.shape[0]), FINGERPRINT_ROWS):
            block = tensor[start : start + FINGERPRINT_ROWS].detach().cpu().contiguous()
            hasher.update(block.numpy().data if block.numel() else b"")
    if classes is not None:
        hasher.update(json.dumps(list(classes)).encode())
    return hasher.hexdigest()


def _safetensors_header(tensors: dict[str, torch.Tensor]) -> bytes:
    """The first bytes of ``safetensors.torch.save(tensors)`` for float32 tensors stored in the
    order given: the JSON header's length, then the header, padded with spaces to 8 bytes."""
    offset, entries = 0, {}
    for name, tensor in tensors.items():
        size = tensor.numel() * tensor.element_size()
        dtype = _SAFETENSORS_DTYPE[tensor.dtype]
        entries[name] = {"dtype": dtype, "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


@attrs.frozen
class SourceFile:
    """A file the data are read from while training (a memory-mapped cache, the CSV behind it), with
    its size and modification time when the data were loaded."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> SourceFile:
        status = os.stat(path)
        return cls(os.fspath(path), status.st_size, status.st_mtime_ns)

    def check_unchanged(self) -> None:
        """Raise :class:`DataError` naming the file if it is gone or was written since."""
        try:
            now = SourceFile.of(self.path)
        except OSError as exc:
            raise DataError(
                f"{self.path}: cannot be read any more ({exc.strerror}); it changed during training"
            ) from None
        if (now.size, now.mtime_ns) != (self.size, self.mtime_ns):
            raise DataError(
                f"{self.path}: changed on disk since the data were loaded from it; start the run "
                "again to read it anew"
            )


def _to_sources(values: Iterable[SourceFile]) -> tuple[SourceFile, ...]:
    return tuple(values)


@attrs.frozen(eq=False)
class RowSource:
    """Where each row of a table read from a file came from: the file, the label column and each
    row's line, so a problem found later (a class seen only in held-out rows) names the line."""

    path: str
    column: str
    lines: torch.Tensor  # int64, one line number per row

    def where(self, row: int) -> str:
        """``"iris.csv, line 7, column 'species'"``."""
        return f"{self.path}, line {int(self.lines[row])}, column {self.column!r}"


def _shape(value: Any) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


def _target_count(targets: Any) -> int:
    return int(targets.shape[1]) if isinstance(targets, torch.Tensor) and targets.ndim == 2 else 1


#: The target name of a classification dataset that names none.
CLASS_TARGET_NAME: Final = "class"


@attrs.frozen(kw_only=True, eq=False)
class Dataset:
    """A table: float32 ``features`` shaped (n, d), and ``targets``: for regression float32, shaped
    (n, k), one column per target (k = 1 for the lecture's tables); for classification int64
    class indices shaped (n,), into ``classes``, the class names in order (at least two).

    ``target_name`` names a single target (default ``"y"``); ``target_names`` names each of k
    (default: ``y1``, ``y2``, ...). ``memory_mapped`` datasets hold tensors that are views of a
    file on disk (:mod:`mlbasics.data._csv_cache`): they are never copied whole, batches are gathered
    from them by index, and :meth:`check_unchanged` tells when the file behind them changed."""

    #: The class names, in the order of their indices, for class labels; ``None`` for regression.
    #: Declared first so the targets' check knows which they are.
    classes: tuple[str, ...] | None = attrs.field(
        default=None, converter=_to_classes, validator=_check_classes
    )
    features: torch.Tensor = attrs.field(validator=_check_features)
    targets: torch.Tensor = attrs.field(validator=_check_targets)
    feature_names: tuple[str, ...] = attrs.field(converter=_to_names)
    _target_name: str | None = attrs.field(default=None, alias="target_name", repr=False)
    target_names: tuple[str, ...] = attrs.field(converter=_to_names)
    ground_truth: GroundTruth | None = None
    #: True when ``features`` and ``targets`` are views of a memory-mapped file.
    memory_mapped: bool = False
    #: The files the tensors are read from while training; :meth:`check_unchanged` checks them.
    source_files: tuple[SourceFile, ...] = attrs.field(default=(), converter=_to_sources)
    #: Held-out rows the dataset brings itself (same columns); when given, they are used instead of
    #: splitting the table by the experiment's ``validation`` / ``test`` fractions.
    validation: Dataset | None = None
    test: Dataset | None = None
    #: For rows read from a file: the line each came from (:class:`RowSource`), so that a later
    #: problem with a row's label names its line.
    row_source: RowSource | None = attrs.field(default=None, repr=False)

    @feature_names.default
    def _default_feature_names(self) -> tuple[str, ...]:
        d = (
            self.features.shape[1]
            if isinstance(self.features, torch.Tensor) and self.features.ndim == 2
            else 0
        )
        return ("x",) if d == 1 else tuple(f"x{i + 1}" for i in range(d))

    @feature_names.validator
    def _check_feature_names(self, _: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        if len(value) != self.features.shape[1]:
            raise ValueError(f"{len(value)} feature names for {self.features.shape[1]} feature columns")

    @target_names.default
    def _default_target_names(self) -> tuple[str, ...]:
        default = CLASS_TARGET_NAME if self.classes is not None else "y"
        k, name = _target_count(self.targets), self._target_name or default
        return (name,) if k == 1 else tuple(f"{name}{i + 1}" for i in range(k))

    @target_names.validator
    def _check_target_names(self, _: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
        k = _target_count(self.targets)
        if len(value) != k:
            raise ValueError(f"{len(value)} target names for {k} target columns")
        if k == 1 and self._target_name is not None and value != (self._target_name,):
            raise ValueError(f"target_name {self._target_name!r} and target_names {value!r} disagree")

    @property
    def target_name(self) -> str:
        """The target's name; with several targets, their names joined by ", " (a label)."""
        return ", ".join(self.target_names)

    @property
    def n_targets(self) -> int:
        """Target columns: k for regression, 1 (the label) for classification."""
        return _target_count(self.targets)

    @property
    def task(self) -> str:
        """``"classification"`` for class labels (``classes`` is set), else ``"regression"``."""
        return "regression" if self.classes is None else "classification"

    @property
    def n_classes(self) -> int | None:
        """How many classes there are (``None`` for regression)."""
        return None if self.classes is None else len(self.classes)

    def class_names(self, indices: torch.Tensor | Sequence[int]) -> list[str]:
        """The names of class indices: ``[0, 2] -> ["setosa", "virginica"]``."""
        if self.classes is None:
            raise ValueError("a regression dataset has no classes")
        values = indices.tolist() if isinstance(indices, torch.Tensor) else list(indices)
        return [self.classes[int(i)] for i in values]

    def check_unchanged(self) -> None:
        """Raise :class:`mlbasics.errors.DataError` naming the file if a file the data are read
        from changed since they were loaded (size or modification time). Training calls it at every
        sync point; for data held in memory there is nothing to check."""
        for source in self.source_files:
            source.check_unchanged()

    @property
    def n_samples(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def __repr__(self) -> str:
        """What the table holds, and its first rows (all of it is in ``features`` and ``targets``)."""
        from mlbasics.show import display

        truth = display.dataset_truth(self)
        return "\n".join(
            [display.dataset_title(self), *([truth] if truth else []), self.format_table(max_rows=5)]
        )

    def _repr_html_(self) -> str:
        from mlbasics.show import display

        return display.dataset_html(self)

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Sequence[float]],
        *,
        feature_names: tuple[str, ...] | None = None,
        target_name: str = "y",
    ) -> Dataset:
        """A dataset from rows of ``(feature, ..., target)``, as the lecture writes its tables."""
        table = torch.tensor(rows, dtype=torch.float32)
        features, targets = table[:, :-1].contiguous(), table[:, -1:].contiguous()
        if feature_names is None:
            return cls(features=features, targets=targets, target_name=target_name)
        return cls(features=features, targets=targets, feature_names=feature_names, target_name=target_name)

    @classmethod
    def from_arrays(
        cls,
        features: Any,
        targets: Any,
        *,
        feature_names: Sequence[str] | None = None,
        target_names: Sequence[str] | None = None,
        validation: Any = None,
        test: Any = None,
    ) -> Dataset:
        """A dataset of data held in memory: ``features`` shaped (n, d) (1-D: one feature) and
        ``targets`` shaped (n,) or (n, k), as NumPy arrays, torch tensors, nested lists or pandas
        objects (their column names are kept unless names are given). A float32 array on the CPU is
        shared, not copied; anything else is converted to float32 once. ``validation`` and ``test``:
        held-out rows, as ``(features, targets)`` pairs. NaN, infinity, text columns, mismatched
        lengths and empty tables are a :class:`mlbasics.DataError` naming them
        (:mod:`mlbasics.data.arrays`)."""
        from mlbasics.data import arrays

        return arrays.from_arrays(
            cls,
            features,
            targets,
            feature_names=feature_names,
            target_names=target_names,
            validation=validation,
            test=test,
        )

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        target: str | Sequence[str],
        *,
        features: Sequence[str] | None = None,
        validation: Any = None,
        test: Any = None,
    ) -> Dataset:
        """A dataset of a pandas DataFrame: its ``target`` column (or a list of them) and its
        ``features`` columns (default: all the others), with the frame's column names.
        ``validation`` and ``test``: held-out rows as DataFrames with the same columns."""
        from mlbasics.data import arrays

        return arrays.from_frame(cls, frame, target, features=features, validation=validation, test=test)

    def format_table(self, max_rows: int | None = 10, digits: int = 6) -> str:
        """The data as a plain-text table, one column per feature and the targets last, as the
        lecture writes its tables: numbers to ``digits`` significant digits, columns right-aligned.
        Past ``max_rows`` rows (``None``: no limit) the table ends with how many rows there are."""
        if max_rows is not None and max_rows < 0:
            raise ValueError(f"max_rows must be >= 0 or None, got {max_rows}")
        names = [*self.feature_names, *self.target_names]
        shown = self.n_samples if max_rows is None else min(max_rows, self.n_samples)
        features = [[f"{value:.{digits}g}" for value in row] for row in self.features[:shown].tolist()]
        if self.classes is not None:
            targets = [[name] for name in self.class_names(self.targets[:shown])]
        else:
            targets = [[f"{value:.{digits}g}" for value in row] for row in self.targets[:shown].tolist()]
        cells = [names, *(x + y for x, y in zip(features, targets, strict=True))]
        widths = [max(len(row[column]) for row in cells) for column in range(len(names))]
        lines = [
            "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in cells
        ]
        if shown < self.n_samples:
            hidden = self.n_samples - shown
            lines.append(f"... {hidden} more row{'s' if hidden != 1 else ''} ({self.n_samples} in all)")
        return "\n".join(lines)

"""What a dataset factory returns: features and targets, with names and (if known) the ground truth."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import safetensors.torch
import torch


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


def _check_targets(instance: Dataset, _: attrs.Attribute[Any], value: torch.Tensor) -> None:
    if not isinstance(value, torch.Tensor) or value.ndim != 2 or value.shape[1] != 1:
        raise ValueError(f"targets must be a tensor shaped (n, 1), got {_shape(value)}")
    if value.dtype != torch.float32:
        raise ValueError(f"targets must be float32, got {value.dtype}")
    if value.shape[0] != instance.features.shape[0]:
        raise ValueError(f"{instance.features.shape[0]} feature rows but {value.shape[0]} targets")


def data_fingerprint(features: torch.Tensor, targets: torch.Tensor) -> str:
    """A SHA-256 of the data's values, so resuming on changed data is noticed."""
    table = {"features": features.detach().cpu().contiguous(), "targets": targets.detach().cpu().contiguous()}
    return hashlib.sha256(safetensors.torch.save(table)).hexdigest()


def _shape(value: Any) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


@attrs.frozen(kw_only=True, eq=False)
class Dataset:
    """A regression table: float32 ``features`` shaped (n, d) and ``targets`` shaped (n, 1)."""

    features: torch.Tensor = attrs.field(validator=_check_features)
    targets: torch.Tensor = attrs.field(validator=_check_targets)
    feature_names: tuple[str, ...] = attrs.field(converter=_to_names)
    target_name: str = "y"
    ground_truth: GroundTruth | None = None
    #: Held-out rows the dataset brings itself (same columns); when given, they are used instead of
    #: splitting the table by the experiment's ``validation`` / ``test`` fractions.
    validation: Dataset | None = None
    test: Dataset | None = None
    #: True when the tensors are CPU views of a memory-mapped file that may be larger than memory:
    #: training then never copies them whole, but gathers each mini-batch on the host.
    memory_mapped: bool = False

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

    @property
    def n_samples(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def check_unchanged(self) -> None:
        """Raise :class:`mlbasics.errors.DataError` naming the file if the file behind the data
        changed since it was read. The training loop calls it at every sync point; data held in
        memory cannot change, so by default it does nothing."""

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

    def format_table(self, max_rows: int | None = 10, digits: int = 6) -> str:
        """The data as a plain-text table, one column per feature and the target last, as the
        lecture writes its tables: numbers to ``digits`` significant digits, columns right-aligned.
        Past ``max_rows`` rows (``None``: no limit) the table ends with how many rows there are."""
        if max_rows is not None and max_rows < 0:
            raise ValueError(f"max_rows must be >= 0 or None, got {max_rows}")
        names = [*self.feature_names, self.target_name]
        shown = self.n_samples if max_rows is None else min(max_rows, self.n_samples)
        table = torch.cat([self.features[:shown], self.targets[:shown]], dim=1).tolist()
        cells = [names, *([f"{value:.{digits}g}" for value in row] for row in table)]
        widths = [max(len(row[column]) for row in cells) for column in range(len(names))]
        lines = [
            "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in cells
        ]
        if shown < self.n_samples:
            hidden = self.n_samples - shown
            lines.append(f"... {hidden} more row{'s' if hidden != 1 else ''} ({self.n_samples} in all)")
        return "\n".join(lines)

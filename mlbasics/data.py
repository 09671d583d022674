"""What a dataset factory returns: features and targets, with names and (if known) the ground truth."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs
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

"""Standardization: features (and, if asked, targets) scaled to mean 0 and standard deviation 1.

Gradient descent with one learning rate for every weight is at the mercy of the features' scales: a
column in the thousands (square feet) makes its weight's gradient a million times larger than a
column near 1, and no learning rate suits both. Standardizing first is what SGD users do.

The means and standard deviations (population, as scikit-learn's ``StandardScaler``) come from the
training rows only, so nothing of the held-out rows leaks into training. The model is trained on the
scaled data; :meth:`Standardization.predict` scales new features the same way and, with
``"features+target"``, turns the model's outputs back into the target's own units, so predictions
are always in the data's units. They are saved in the run folder (``standardization.safetensors``).

A feature column that is constant on the training rows has standard deviation 0 and cannot be
scaled: it is centred only (as scikit-learn's ``StandardScaler`` does), and a note names it, so
nothing is divided by 0 and nothing silently. A constant target under ``"features+target"`` is an
error: there is nothing to learn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Final

import attrs
import torch

from mlbasics.errors import ValidationError
from mlbasics.notes import note_once

FEATURES: Final = "features"
FEATURES_AND_TARGET: Final = "features+target"


@attrs.frozen(kw_only=True, eq=False)
class Standardization:
    """Per-column means and standard deviations (float32, on the CPU, shaped (d,) and (k,))."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    #: ``None`` when only the features are scaled.
    target_mean: torch.Tensor | None = None
    target_std: torch.Tensor | None = None

    @property
    def mode(self) -> str:
        return FEATURES if self.target_mean is None else FEATURES_AND_TARGET

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the scaled units the model was trained in."""
        return (x - self.feature_mean.to(x.device)) / self.feature_std.to(x.device)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """Targets in the scaled units the model was trained on (unchanged for ``"features"``)."""
        if self.target_mean is None or self.target_std is None:
            return y
        return (y - self.target_mean.to(y.device)) / self.target_std.to(y.device)

    def outputs(self, y: torch.Tensor) -> torch.Tensor:
        """The model's outputs in the target's own units (unchanged for ``"features"``)."""
        if self.target_mean is None or self.target_std is None:
            return y
        return y * self.target_std.to(y.device) + self.target_mean.to(y.device)

    def predict(self, model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``model``'s predictions for raw features ``x``, in the data's units."""
        return self.outputs(model(self.features(x)))

    def linear_in_data_units(
        self, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For H(x) = Wx + b learned on scaled data: the W and b that give the same predictions on
        raw data. With x' = (x - m) / s and y = y' * t + u (t = 1, u = 0 for features only):
        W_raw = t W / s (per column) and b_raw = t (b - W (m / s)) + u."""
        w = weight.detach().cpu().to(torch.float64)
        b = torch.zeros(w.shape[0], dtype=torch.float64) if bias is None else bias.detach().cpu().double()
        m, s = self.feature_mean.double(), self.feature_std.double()
        t = (
            torch.ones(w.shape[0], dtype=torch.float64)
            if self.target_std is None
            else self.target_std.double()
        )
        u = (
            torch.zeros(w.shape[0], dtype=torch.float64)
            if self.target_mean is None
            else self.target_mean.double()
        )
        raw_w = t[:, None] * w / s[None, :]
        raw_b = t * (b - w @ (m / s)) + u
        return raw_w.to(weight.dtype), raw_b.to(weight.dtype)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"feature_mean": self.feature_mean, "feature_std": self.feature_std}
        if self.target_mean is not None and self.target_std is not None:
            tensors |= {"target_mean": self.target_mean, "target_std": self.target_std}
        return {name: tensor.contiguous() for name, tensor in tensors.items()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], where: str) -> Standardization:
        """Read back :meth:`to_tensors`; ``ValueError`` naming ``where`` if malformed."""
        names = set(tensors)
        if names not in (
            {"feature_mean", "feature_std"},
            {"feature_mean", "feature_std", "target_mean", "target_std"},
        ):
            raise ValueError(f"{where}: unexpected tensors {sorted(names)}")
        for name, tensor in tensors.items():
            if tensor.ndim != 1 or tensor.dtype != torch.float32 or not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"{where}: {name} must be a finite float32 vector")
        if bool((tensors["feature_std"] <= 0).any()) or (
            "target_std" in tensors and bool((tensors["target_std"] <= 0).any())
        ):
            raise ValueError(f"{where}: a standard deviation is not positive")
        return cls(
            feature_mean=tensors["feature_mean"],
            feature_std=tensors["feature_std"],
            target_mean=tensors.get("target_mean"),
            target_std=tensors.get("target_std"),
        )


def _mean_std(
    table: torch.Tensor, rows: torch.Tensor | None, chunk_rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Column means and population standard deviations of ``table`` (its ``rows``, if given),
    summed in float64 chunk by chunk: a memory-mapped table is never copied whole."""
    n = table.shape[0] if rows is None else len(rows)

    def chunks() -> Iterator[torch.Tensor]:
        for start in range(0, n, chunk_rows):
            part = (
                table[start : start + chunk_rows]
                if rows is None
                else table.index_select(0, rows[start : start + chunk_rows])
            )
            yield part.to(torch.float64)

    mean = sum((chunk.sum(0) for chunk in chunks()), torch.zeros(table.shape[1], dtype=torch.float64)) / n
    squares = sum(
        (((chunk - mean) ** 2).sum(0) for chunk in chunks()), torch.zeros(table.shape[1], dtype=torch.float64)
    )
    return mean, (squares / n).sqrt()


def _constant(mean: torch.Tensor, std: torch.Tensor) -> bool:
    return not float(std) > 0.0 or float(std) < 1e-12 * max(1.0, abs(float(mean)))


def fit_standardization(
    mode: str,
    features: torch.Tensor,
    targets: torch.Tensor,
    *,
    feature_names: Sequence[str],
    target_names: Sequence[str],
    rows: torch.Tensor | None = None,
    chunk_rows: int = 1 << 20,
) -> Standardization:
    """The statistics of ``features`` and (for ``"features+target"``) ``targets``: the training
    rows (CPU tensors), or of their ``rows`` if given. A constant feature column is centred but not
    scaled (its standard deviation taken as 1, as scikit-learn's ``StandardScaler`` takes it), with a
    note naming it: an image's corner pixel that is 0 in every picture is no error. A constant
    target column is a :class:`mlbasics.ValidationError` naming it: there is nothing to learn."""
    n = features.shape[0] if rows is None else len(rows)
    rows_text = f"{n} training row{'s' if n != 1 else ''}"
    feature_mean, feature_std = _mean_std(features, rows, chunk_rows)
    flat = [
        i for i, (mean, std) in enumerate(zip(feature_mean, feature_std, strict=True)) if _constant(mean, std)
    ]
    if flat:
        names = ", ".join(repr(feature_names[i]) for i in flat[:5]) + (
            f" and {len(flat) - 5} more" if len(flat) > 5 else ""
        )
        note_once(
            f"standardize: feature column{'s' if len(flat) > 1 else ''} {names} "
            f"{'are' if len(flat) > 1 else 'is'} constant on the {rows_text}: centred, not scaled"
        )
        feature_std[flat] = 1.0
    target_mean = target_std = None
    if mode == FEATURES_AND_TARGET:
        target_mean, target_std = _mean_std(targets, rows, chunk_rows)
        problems = [
            f"standardize: target column {name!r} is constant on the {rows_text} (every value "
            f'{float(mean):.6g}), so it cannot be scaled; use standardize = "features"'
            for name, mean, std in zip(target_names, target_mean, target_std, strict=True)
            if _constant(mean, std)
        ]
        if problems:
            raise ValidationError(problems)
    as32 = torch.float32
    return Standardization(
        feature_mean=feature_mean.to(as32),
        feature_std=feature_std.to(as32),
        target_mean=None if target_mean is None else target_mean.to(as32),
        target_std=None if target_std is None else target_std.to(as32),
    )

"""Inputs and outputs of ``mlbasics predict``: feature values from the command line or a CSV file,
predictions as CSV (the model's feature columns, then one predicted column per target; for class
labels the predicted class's name, or with ``--proba`` one probability column per class)."""

from __future__ import annotations

import csv
import io
import math
import struct
from collections.abc import Sequence

import torch

from mlbasics.data._csv import read_header, read_table
from mlbasics.errors import ValidationError

_FLOAT32_MAX = torch.finfo(torch.float32).max


def parse_samples(texts: Sequence[str], feature_names: Sequence[str]) -> torch.Tensor:
    """``["1", "2"]`` (one feature) or ``["1,2,3", "4,5,6"]`` (three): one sample per text, its
    feature values separated by commas."""
    width = len(feature_names)
    rows = []
    for text in texts:
        cells = text.split(",")
        if len(cells) != width:
            raise ValidationError(
                [
                    f"--x {text!r}: {len(cells)} value{'s' if len(cells) != 1 else ''}, but the model "
                    f"takes {width} ({', '.join(feature_names)}), separated by commas"
                ]
            )
        row = []
        for cell in cells:
            try:
                value = float(cell)
            except ValueError:
                raise ValidationError([f"--x {text!r}: {cell.strip()!r} is not a number"]) from None
            if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
                raise ValidationError([f"--x {text!r}: {cell.strip()!r} is not a finite float32 number"])
            row.append(value)
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), width)


def read_samples(path: str, feature_names: Sequence[str]) -> torch.Tensor:
    """The model's feature columns, by name, from a CSV file with a header row (other columns,
    such as the target, are ignored)."""
    header = read_header(path)
    for name in feature_names:
        header.require_column(name, hint=f"; the model takes {', '.join(feature_names)}")
    (values,) = read_table(header, [header.indices(list(feature_names))])
    return torch.from_numpy(values)


def predictions_csv(
    features: torch.Tensor,
    predictions: torch.Tensor | Sequence[str],
    feature_names: Sequence[str],
    target_names: str | Sequence[str],
) -> str:
    """One row per sample: its features, then the predictions (one column per target; or the
    predicted class's name), under the header of the training data."""
    names = [target_names] if isinstance(target_names, str) else list(target_names)
    targets = [name if name not in feature_names else f"predicted_{name}" for name in names]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*feature_names, *targets])
    if isinstance(predictions, torch.Tensor):
        rows: list[list[str]] = [
            [float32_text(value) for value in y] for y in predictions.reshape(len(predictions), -1).tolist()
        ]
    else:
        rows = [[label] for label in predictions]
    for x, y in zip(features.tolist(), rows, strict=True):
        writer.writerow([*(float32_text(value) for value in x), *y])
    return buffer.getvalue()


def probabilities_csv(
    features: torch.Tensor, probabilities: torch.Tensor, feature_names: Sequence[str], classes: Sequence[str]
) -> str:
    """One row per sample: its features, then the probability of each class, one column per class
    headed ``P(name)``, in the classes' order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*feature_names, *(f"P({name})" for name in classes)])
    for x, p in zip(features.tolist(), probabilities.tolist(), strict=True):
        writer.writerow([float32_text(value) for value in [*x, *p]])
    return buffer.getvalue()


def float32_text(value: float) -> str:
    """The shortest decimal text that reads back as the same float32: 0.1, not 0.10000000149011612."""
    if not math.isfinite(value):
        return str(value)
    target = struct.pack("<f", value)
    for digits in range(6, 10):
        text = f"{value:.{digits}g}"
        if struct.pack("<f", float(text)) == target:
            return text
    return repr(value)

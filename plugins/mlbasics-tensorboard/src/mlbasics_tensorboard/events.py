"""What the callback and :func:`mlbasics_tensorboard.log_sweep` write, and under which names.

Tags put each quantity in one TensorBoard section, with the part of the data it was computed on
after the slash: ``loss/train``, ``loss/validation``, ``loss/test``, ``r2/train``,
``r2/validation``, ``r2/test``; the learning rate is ``lr``. Scalars are written as TensorBoard's
classic ``simple_value``, a float32: the losses and metrics mlbasics computes are float32 already,
so they arrive unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final, cast

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

#: The prefixes of :attr:`mlbasics.Setup.values` and :attr:`mlbasics.TrainResult.metrics` names,
#: and the part of the data each stands for.
PARTS: Final = {"validation_": "validation", "test_": "test"}

HParamValue = float | int | str


def tag(name: str, metrics: Iterable[str]) -> str:
    """The tag of a value named as :attr:`mlbasics.Setup.values` names it: ``"loss"`` is
    ``"loss/train"``, ``"validation_r2"`` is ``"r2/validation"``, ``"test_loss"`` is
    ``"loss/test"``; ``"lr"`` and any other name stay as they are."""
    known = {"loss", *metrics}
    for prefix, part in PARTS.items():
        if name.startswith(prefix) and name[len(prefix) :] in known:
            return f"{name[len(prefix) :]}/{part}"
    return f"{name}/train" if name in known else name


def hparam_value(value: Any) -> HParamValue | None:
    """A setting as TensorBoard's HParams tab holds it: numbers and strings as they are, ``true``
    and ``false`` as strings (TensorBoard would show them as 1 and 0), lists and tables as JSON;
    ``None`` (an unset setting) is left out."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return value
    return json.dumps(value)


def flat_settings(settings: Mapping[str, Any]) -> dict[str, HParamValue]:
    """``settings`` with their values as :func:`hparam_value` gives them, unset ones left out."""
    flat = {}
    for key, value in settings.items():
        shown = hparam_value(value)
        if shown is not None:
            flat[key] = shown
    return flat


def write_hparams(writer: SummaryWriter, settings: Mapping[str, HParamValue], *, step: int) -> None:
    """The run's ``settings`` as an HParams session in ``writer``'s own run. The metrics the HParams
    tab shows beside them are the run's scalar tags, at their last values.

    No experiment record is written: TensorBoard takes the first one it finds as the description of
    every run in the logdir, so one run's record would hide the settings and metrics of others (a
    run with another model, a sweep beside single runs); without one it gathers them from all the
    sessions and scalars. And unlike ``SummaryWriter.add_hparams``, no second run is made for the
    metrics' values: they are in this run already."""
    records: Any = hparams  # torch's summary helpers are not annotated
    _, start, end = records(dict(settings), {})
    file_writer = cast(Any, writer)._get_file_writer()
    file_writer.add_summary(start, step)
    file_writer.add_summary(end, step)

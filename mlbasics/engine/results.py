"""What a training run produced: :class:`TrainResult`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from mlbasics.core.specs import Kind
from mlbasics.data.arrays import prediction_rows
from mlbasics.data.dataset import Dataset
from mlbasics.data.standardization import Standardization
from mlbasics.engine.experiment import Experiment
from mlbasics.engine.interrupts import signal_name
from mlbasics.engine.setup import ComponentInfo


@attrs.frozen(kw_only=True, eq=False)
class TrainResult:
    """What a training run produced: the loss history, the learned parameters and where they came from."""

    experiment: Experiment
    history: list[float]
    epochs: int
    device: str
    seconds: float
    parameters: dict[str, torch.Tensor]
    components: dict[Kind, ComponentInfo]
    model: nn.Module
    dataset: Dataset
    stopped: str | None = None
    #: How the steps were taken: "eager", "cuda-graph" (captured once, replayed) or "closed-form".
    step_mode: str = "eager"
    #: The signal that stopped training (SIGINT, SIGTERM), if one did.
    interrupted_by: int | None = None
    #: The epochs already done when this call began (non-zero for a resumed run).
    resumed_from: int = 0
    #: ``(epoch, validation loss)`` at every sync point (empty without a validation part).
    validation_history: list[tuple[int, float]] = attrs.field(factory=list)
    #: The loss on the test part, evaluated once at the end (``None`` without a test part).
    test_loss: float | None = None
    #: ``(epoch, value)`` of each metric at every sync point, by value name: ``"r2"`` on the
    #: training rows, ``"validation_r2"`` on the validation rows (see :mod:`mlbasics.engine.metrics`).
    metric_history: dict[str, list[tuple[int, float]]] = attrs.field(factory=dict)
    #: Each metric on the test rows, evaluated once at the end (empty without a test part).
    test_metrics: dict[str, float] = attrs.field(factory=dict)
    #: Which way each metric is better, by metric name: ``"min"`` or ``"max"``.
    metric_modes: dict[str, str] = attrs.field(factory=dict)
    #: Provenance of the experiment's metrics and callbacks (``"metrics"``, ``"callbacks"``).
    listed_components: dict[str, list[ComponentInfo]] = attrs.field(factory=dict)
    #: Rows in each part: ``{"train": ..., "validation": ..., "test": ...}``.
    split_sizes: dict[str, int] = attrs.field(factory=dict)
    #: The statistics the data were scaled with (``standardize``), or ``None``.
    standardization: Standardization | None = None
    #: The epoch whose weights the model holds, where a callback put them back at the end (early
    #: stopping's ``restore_best``); ``None`` when it holds the last epoch's.
    restored_epoch: int | None = None
    #: What those restored weights do, evaluated once at the end: ``"loss"`` on the training rows,
    #: ``"validation_loss"``, and every metric on the training and validation rows (``"r2"``,
    #: ``"validation_r2"``); empty when nothing was restored. :attr:`final_loss`,
    #: :attr:`validation_loss` and :attr:`metrics` give these then, not the last sync point's.
    restored_values: dict[str, float] = attrs.field(factory=dict)
    #: For class labels: the confusion matrix of each part of the data at the end of training, by
    #: part (``"training"``, ``"validation"``, ``"test"``), int64 (C, C) counts on the CPU: entry
    #: [i, j] is the rows of class i predicted as class j (see :meth:`confusion_matrix`). Empty for
    #: regression (and for more than 1,000 classes).
    confusion: dict[str, torch.Tensor] = attrs.field(factory=dict)

    @property
    def classes(self) -> tuple[str, ...] | None:
        """The class names, in the order of their indices; ``None`` for regression."""
        return self.dataset.classes

    def confusion_matrix(self, part: str | None = None, *, normalize: bool = False) -> torch.Tensor:
        """The confusion matrix of ``part`` (``"test"``, ``"validation"`` or ``"training"``;
        default: the test rows if there are some, else the validation rows, else the training
        rows): counts (int64, (C, C)), or with ``normalize`` each row divided by its sum, the
        share of each class's rows predicted as each class (scikit-learn's ``normalize="true"``).
        Rows and columns are in the order of :attr:`classes`."""
        from mlbasics.engine.classification import normalized

        if not self.confusion:
            raise ValueError("no confusion matrix: the run's targets are not class labels")
        part = part or next(p for p in ("test", "validation", "training") if p in self.confusion)
        if part not in self.confusion:
            raise ValueError(f"no confusion matrix of {part!r}; the run has {', '.join(self.confusion)}")
        counts = self.confusion[part]
        return normalized(counts) if normalize else counts.clone()

    @property
    def validation_loss(self) -> float | None:
        """The validation loss of the model returned: at the last sync point, or of the restored
        weights (:attr:`restored_epoch`); ``None`` without a validation part."""
        if "validation_loss" in self.restored_values:
            return self.restored_values["validation_loss"]
        return self.validation_history[-1][1] if self.validation_history else None

    @property
    def metrics(self) -> dict[str, float]:
        """Every metric's value for the model returned: at the last sync point, or of the restored
        weights (:attr:`restored_epoch`) (``"r2"``, ``"validation_r2"``), and on the test rows
        (``"test_r2"``)."""
        last = {name: pairs[-1][1] for name, pairs in self.metric_history.items() if pairs}
        restored = {name: value for name, value in self.restored_values.items() if name in last}
        return last | restored | {f"test_{name}": value for name, value in self.test_metrics.items()}

    def parameters_in_data_units(self) -> dict[str, torch.Tensor]:
        """The learned parameters; for a linear model (``weight``, ``bias``) trained on
        standardized data, the W and b that act on the data's own units."""
        weight = self.parameters.get("weight")
        if self.standardization is None or weight is None or set(self.parameters) - {"weight", "bias"}:
            return self.parameters
        raw_weight, raw_bias = self.standardization.linear_in_data_units(weight, self.parameters.get("bias"))
        return {"weight": raw_weight, "bias": raw_bias}

    @property
    def final_loss(self) -> float:
        """The loss of the last epoch (computed before that epoch's update, as the lecture prints
        it); where weights were restored (:attr:`restored_epoch`), theirs on the training rows."""
        return self.restored_values.get("loss", self.history[-1])

    def __repr__(self) -> str:
        """A few lines: what was trained, where, for how long, the losses and (when few) the learned
        parameters. Everything else is on the attributes (``history``, ``parameters``, ``model``)."""
        from mlbasics.show import display

        return display.text(*display.train_result(self))

    def _repr_html_(self) -> str:
        """Jupyter's view: the same summary as a table, with the loss curve (and the fit) drawn."""
        from mlbasics.show import display

        return display.train_result_html(self)

    def plot(self, path: str | Path | None = None) -> Any:
        """The run's picture as a matplotlib figure: the loss per epoch (with the validation loss),
        for data with one feature the fit, and the metrics; with ``path``, also written there as a
        PNG. ``mlbasics.plot([r1, r2])`` draws several runs on one figure."""
        from mlbasics.show.plotting import plot

        return plot(self, path)

    def predict(self, features: Any) -> Any:
        """The trained model's predictions: for regression a tensor (n, k) on the CPU, in the
        data's units; for class labels the predicted class's name for each row, a list of strings
        (their probabilities: :meth:`predict_proba`).

        ``features``: rows of the model's d features as a tensor, a NumPy array, a nested list or a
        pandas DataFrame (its columns taken by name where it has the model's); one row of d values;
        for a model of one feature, a float or one value per row. Anything else is a
        :class:`mlbasics.ValidationError` naming the shape expected
        (:func:`mlbasics.data.arrays.prediction_rows`, as :meth:`mlbasics.Checkpoint.predict`)."""
        outputs = self._outputs(features)
        if self.dataset.classes is None:
            return outputs
        from mlbasics.engine.classification import predicted

        return self.dataset.class_names(predicted(outputs))

    def predict_proba(self, features: Any) -> torch.Tensor:
        """For class labels: the probability of each class for each row of ``features``, (n, C)
        on the CPU, columns in the order of :attr:`classes` (softmax of the model's outputs; for
        one output z, 1 - σ(z) and σ(z))."""
        if self.dataset.classes is None:
            raise ValueError(
                "predict_proba needs class labels; this run's targets are real-valued (use predict)"
            )
        from mlbasics.engine.classification import probabilities

        return probabilities(self._outputs(features))

    def _outputs(self, features: Any) -> torch.Tensor:
        """The model's outputs for ``features``, on the CPU (in the data's units for regression)."""
        x = prediction_rows(features, self.dataset.feature_names)
        device = next(iter(self.model.parameters()), x).device
        x = x.to(device)
        with torch.no_grad():
            if self.standardization is not None:  # back in the data's units
                return self.standardization.predict(self.model, x).cpu()
            predictions: torch.Tensor = self.model(x)
        return predictions.cpu()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: losses, parameters as nested lists, and each component's provenance."""
        return {
            "final_loss": self.final_loss,
            "epochs": self.epochs,
            "device": self.device,
            "seconds": self.seconds,
            "stopped": self.stopped,
            "step_mode": self.step_mode,
            "interrupted_by": signal_name(self.interrupted_by) if self.interrupted_by else None,
            "resumed_from": self.resumed_from,
            "parameters": {name: value.tolist() for name, value in self.parameters.items()},
            "components": {kind: info.to_dict() for kind, info in self.components.items()},
            "experiment": self.experiment.to_dict(),
            "history": self.history,
            **self._held_out_dict(),
        }

    def _held_out_dict(self) -> dict[str, Any]:
        """The keys of held-out data and standardization, present only where the run had them."""
        extra: dict[str, Any] = {}
        if self.restored_epoch is not None:  # final_loss, validation_loss and metrics are its weights'
            extra["restored_epoch"] = self.restored_epoch
        if self.split_sizes and self.split_sizes.get("train") != self.dataset.n_samples:
            extra["split"] = self.split_sizes
        if self.validation_history:
            extra["validation_loss"] = self.validation_loss
            extra["validation_history"] = [list(pair) for pair in self.validation_history]
        if self.test_loss is not None:
            extra["test_loss"] = self.test_loss
        if self.metric_history or self.test_metrics:
            extra["metrics"] = self.metrics
            extra["metric_history"] = {
                name: [list(pair) for pair in pairs] for name, pairs in self.metric_history.items()
            }
            extra["metric_modes"] = dict(self.metric_modes)  # which way each is better
        for field, infos in self.listed_components.items():
            extra[f"{field}_components"] = [info.to_dict() for info in infos]
        if self.dataset.classes is not None:
            extra["classes"] = list(self.dataset.classes)
        if self.confusion:
            from mlbasics.engine.classification import normalized

            extra["confusion"] = {
                part: {"counts": counts.tolist(), "normalized": normalized(counts).tolist()}
                for part, counts in self.confusion.items()
            }
        if self.standardization is not None:
            extra["standardization"] = {
                name: value.tolist() for name, value in self.standardization.to_tensors().items()
            }
            in_data_units = self.parameters_in_data_units()
            if in_data_units is not self.parameters:
                extra["parameters_in_data_units"] = {k: v.tolist() for k, v in in_data_units.items()}
        return extra

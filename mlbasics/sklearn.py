"""mlbasics models as scikit-learn estimators: :class:`MLBasicsRegressor` in a ``Pipeline``, in
``GridSearchCV``, in ``cross_val_score``. Needs scikit-learn (``pip install 'mlbasics[sklearn]'``),
which is imported here only.

Every training choice is a parameter of ``__init__``, under the name the registry and
:func:`mlbasics.train` use for it (``model``, ``hidden``, ``loss``, ``optimizer``, ``lr``,
``epochs``, ``batch_size``, ``standardize``, ``device``); ``None`` leaves a component's param at its
registered default. ``fit`` validates the data with scikit-learn's own helpers, hands them to
:func:`mlbasics.train` as data held in memory and keeps the :class:`mlbasics.TrainResult` in
``result_``; the estimator passes scikit-learn's ``check_estimator`` (tests/test_sklearn.py).

A fitted estimator pickles, as scikit-learn requires: pickles run code when they are loaded, so
load only pickles you trust. Run folders (``mlbasics.train(..., save=DIR)``) never hold one.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

import mlbasics
from mlbasics.data.dataset import Dataset
from mlbasics.data.splits import part_size
from mlbasics.errors import MlbasicsError

__all__ = ["MLBasicsClassifier", "MLBasicsRegressor"]


class _MLBasicsEstimator(BaseEstimator):  # type: ignore[misc]
    """What a regressor and a classifier share: the training choices and how ``fit`` trains."""

    def __init__(
        self,
        model: str = "mlp",
        *,
        hidden: Sequence[int] | None = None,
        activation: str | None = None,
        model_params: Mapping[str, Any] | None = None,
        loss: str | None = None,
        optimizer: str = "sgd",
        lr: float | None = None,
        momentum: float | None = None,
        optimizer_params: Mapping[str, Any] | None = None,
        epochs: int = 200,
        batch_size: int | None = 32,
        standardize: str = "features+target",
        validation_fraction: float | None = None,
        early_stopping: bool = False,
        patience: int = 10,
        random_state: int | np.random.RandomState | None = None,
        device: str = "auto",
    ) -> None:
        # scikit-learn's contract: __init__ stores its arguments unchanged and does nothing else.
        self.model = model
        self.hidden = hidden
        self.activation = activation
        self.model_params = model_params
        self.loss = loss
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.optimizer_params = optimizer_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.standardize = standardize
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.random_state = random_state
        self.device = device

    #: The loss when ``loss`` is None.
    _default_loss = "mse"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "result_")

    def _settings(self, n_rows: int) -> dict[str, Any]:
        """The keyword arguments of :func:`mlbasics.train` that these parameters stand for."""
        model = {**(self.model_params or {})}
        if self.hidden is not None:
            model["hidden"] = list(self.hidden)
        if self.activation is not None:
            model["activation"] = self.activation
        optimizer = {**(self.optimizer_params or {})}
        if self.lr is not None:
            optimizer["lr"] = self.lr
        momentum = self.momentum
        if momentum is None and self.optimizer == "sgd":
            momentum = 0.9  # SGD with momentum: what trains well in few epochs, as users expect
        if momentum is not None:
            optimizer["momentum"] = momentum
        validation = self.validation_fraction
        if validation is None:
            validation = 0.1 if self.early_stopping else 0.0
        n_train = n_rows - part_size(validation, n_rows)  # as the split will count them
        batch_size = self.batch_size if self.batch_size is None else min(self.batch_size, max(n_train, 1))
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        callbacks: list[dict[str, Any]] = []
        if self.early_stopping:
            callbacks.append({"name": "early-stopping", "patience": self.patience, "check_every": 1})
        return {
            "model": {"name": self.model, **model},
            "loss": self.loss or self._default_loss,
            "optimizer": {"name": self.optimizer, **optimizer},
            "epochs": self.epochs,
            "batch_size": batch_size,
            "standardize": self.standardize,
            "validation": validation,
            "split_seed": seed,
            "seed": seed,
            "device": self.device,
            "callbacks": callbacks,
        }

    def _train(self, X: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> None:
        """Train on validated ``X`` and ``y`` (targets as the model learns them) into ``result_``."""
        if self.standardize != "none" and X.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__}: standardize={self.standardize!r} needs at least 2 samples, "
                f"got {X.shape[0]} sample; use standardize='none'"
            )
        names = getattr(self, "feature_names_in_", None)
        try:
            dataset = Dataset.from_arrays(X, y, feature_names=None if names is None else list(names))
            self.result_ = mlbasics.train(dataset=dataset, **self._settings(X.shape[0]))
        except MlbasicsError as exc:  # what scikit-learn's tools expect of a fit that refuses
            raise ValueError(f"{type(self).__name__}: {exc}") from exc

    def _outputs(self, X: Any) -> np.ndarray[Any, Any]:
        """The model's outputs for ``X``, in the data's units: (n, k), float64.

        They are computed in float64, from the float32 weights: in float32, the matrix products
        round a row differently depending on where it falls among the others, and scikit-learn
        requires a row's prediction to be the same whatever rows come with it."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        result = self.result_
        model = result.model
        state = {name: t.double() if t.is_floating_point() else t for name, t in model.state_dict().items()}
        with warnings.catch_warnings():  # a read-only array (a memory map): it is only read
            warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
            x = torch.from_numpy(X).to(next(model.parameters()).device)

        def forward(rows: torch.Tensor) -> torch.Tensor:
            output: torch.Tensor = torch.func.functional_call(model, state, (rows,))
            return output

        with torch.no_grad():
            outputs = (
                forward(x) if result.standardization is None else result.standardization.predict(forward, x)
            )
        return np.asarray(outputs.cpu().numpy(), dtype=np.float64)


class MLBasicsRegressor(RegressorMixin, _MLBasicsEstimator):  # type: ignore[misc]
    """An mlbasics model trained by :func:`mlbasics.train` as a scikit-learn regressor.

    Parameters, by the registry's names (``None``: the component's registered default):

    - ``model`` (``"mlp"``), ``hidden`` (its hidden layers' sizes), ``activation``, and any
      other params of the model in ``model_params``;
    - ``loss`` (``"mse"``), ``optimizer`` (``"sgd"``), ``lr``, ``momentum`` (``None``: 0.9 for
      ``"sgd"``, the optimizer's own default otherwise) and any other params of the optimizer in
      ``optimizer_params``;
    - ``epochs`` (200) and ``batch_size`` (32, at most the training rows; ``None``: full batch);
    - ``standardize``: ``"features+target"`` (default), ``"features"`` or ``"none"``; the
      predictions are in the targets' own units either way;
    - ``validation_fraction``: rows held out for validation (default 0.1 with
      ``early_stopping``, else none); ``early_stopping``: stop once the validation loss has not
      improved for ``patience`` epochs, ending with the best weights;
    - ``random_state``: seeds the initial weights, the batches' order and the validation split;
    - ``device``: ``"auto"``, ``"cpu"``, ``"cuda"``, ...

    After ``fit``: ``result_`` (the :class:`mlbasics.TrainResult`), ``n_features_in_``,
    ``feature_names_in_`` (for a DataFrame with string column names) and ``n_outputs_``. ``score``
    is R², as for every scikit-learn regressor; ``y`` may have several columns.
    """

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any) -> MLBasicsRegressor:
        """Train on features ``X`` (n, d) and targets ``y`` (n,) or (n, k)."""
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        self._train(X, y)
        self.n_outputs_ = 1 if y.ndim == 1 else int(y.shape[1])
        self._one_d = y.ndim == 1
        return self

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        """Predictions for ``X``: shaped (n,) when ``y`` was 1-D, else (n, k)."""
        outputs = self._outputs(X)
        return outputs.ravel() if self._one_d else outputs


class MLBasicsClassifier(ClassifierMixin, _MLBasicsEstimator):  # type: ignore[misc]
    """The classifier, with the same parameters as :class:`MLBasicsRegressor`: waiting for
    classification in mlbasics (class-index targets and a cross-entropy loss), which this
    version does not have yet. Its ``fit`` says so."""

    _default_loss = "cross-entropy"

    def fit(self, X: Any, y: Any) -> MLBasicsClassifier:
        raise NotImplementedError(
            "MLBasicsClassifier needs classification in mlbasics (class labels as targets, a "
            "cross-entropy loss), which this version does not have yet; MLBasicsRegressor works"
        )

"""mlbasics.sklearn: the estimators pass scikit-learn's own checks and work in its model selection."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_regressors_train, parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

import mlbasics
from mlbasics.sklearn import MLBasicsClassifier, MLBasicsRegressor

#: What the checks train: fewer epochs than the default keeps them quick, and still trains well
#: enough for check_regressors_train (R² > 0.5); the defaults are checked on their own below.
CHECKED = MLBasicsRegressor(epochs=50)
#: Skipped in this process: it runs only with SCIPY_ARRAY_API=1 set before scipy is imported,
#: which test_the_array_api_check_passes_in_its_own_interpreter does.
ARRAY_API_CHECK = "check_array_api_input"


def _expected_failures(estimator: Any) -> dict[str, str]:
    return {}  # every check passes: nothing is listed


@parametrize_with_checks([CHECKED], expected_failed_checks=_expected_failures)
def test_scikit_learn_checks(estimator: Any, check: Any) -> None:
    check(estimator)


def test_the_array_api_check_passes_in_its_own_interpreter() -> None:
    script = (
        "from sklearn.utils.estimator_checks import check_estimator\n"
        "from mlbasics.sklearn import MLBasicsRegressor\n"
        "results = check_estimator(MLBasicsRegressor(epochs=5), on_fail=None, on_skip=None)\n"
        f"print([r['status'] for r in results if r['check_name'] == {ARRAY_API_CHECK!r}])\n"
    )
    environment = dict(os.environ, SCIPY_ARRAY_API="1")
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "['passed']"


def test_the_defaults_train() -> None:
    # scikit-learn's own check that a regressor with its default parameters learns (R² > 0.5 on
    # its data), also from lists and a read-only memory map.
    check_regressors_train("MLBasicsRegressor", MLBasicsRegressor())
    check_regressors_train("MLBasicsRegressor", MLBasicsRegressor(), readonly_memmap=True)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    X, y = make_regression(n_samples=120, n_features=4, noise=1.0, random_state=0)
    return X * [1.0, 10.0, 100.0, 1000.0], y  # columns of different scales


def test_in_a_pipeline_after_a_standard_scaler(data: tuple[Any, Any]) -> None:
    X, y = data
    pipeline = make_pipeline(StandardScaler(), MLBasicsRegressor(random_state=0))
    pipeline.fit(X, y)
    assert pipeline.score(X, y) > 0.95  # R²: the data are linear with little noise
    fitted = pipeline[-1]
    scaled = fitted.result_.dataset.features.double()
    # The regressor was trained on the scaler's output, columns of mean 0 and standard deviation 1
    # (in float64), as float32: each value is off by at most half an ulp, 2^-24 of its size.
    bound = 4 * 2**-24 * float(scaled.abs().max())
    assert float(scaled.mean(0).abs().max()) < bound
    assert float((scaled.std(0, correction=0) - 1).abs().max()) < bound
    assert fitted.n_features_in_ == 4


def test_grid_search_over_hidden_and_lr_in_two_processes(data: tuple[Any, Any]) -> None:
    X, y = data
    grid = {"hidden": [(8,), (16, 16)], "lr": [0.01, 0.03]}
    search = GridSearchCV(MLBasicsRegressor(epochs=40, random_state=0), grid, cv=3, n_jobs=2)
    search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 4
    assert np.isfinite(scores).all()  # every fit succeeded (a failed one scores NaN)
    assert search.best_params_ in [{"hidden": h, "lr": lr} for h in grid["hidden"] for lr in grid["lr"]]
    best = search.best_estimator_
    assert best.result_.experiment.model.params["hidden"] == list(search.best_params_["hidden"])
    assert best.result_.experiment.optimizer.params["lr"] == search.best_params_["lr"]


def test_cross_val_score_with_five_folds(data: tuple[Any, Any]) -> None:
    X, y = data
    scores = cross_val_score(MLBasicsRegressor(epochs=60, random_state=0), X, y, cv=5)
    assert scores.shape == (5,)
    assert (scores > 0.9).all(), scores


def test_clone_of_a_fitted_estimator_is_unfitted(data: tuple[Any, Any]) -> None:
    X, y = data
    fitted = MLBasicsRegressor(hidden=(4,), epochs=5, random_state=1).fit(X, y)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "result_")
    with pytest.raises(NotFittedError):
        check_is_fitted(copy)
    with pytest.raises(NotFittedError):
        copy.predict(X)


def test_a_fitted_estimator_pickles(data: tuple[Any, Any]) -> None:
    X, y = data
    fitted = MLBasicsRegressor(hidden=(4,), epochs=5, random_state=1).fit(X, y)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    assert restored.get_params() == fitted.get_params()


def test_the_same_random_state_trains_the_same_model(data: tuple[Any, Any]) -> None:
    X, y = data
    first = MLBasicsRegressor(epochs=5, random_state=3).fit(X, y).predict(X)
    second = MLBasicsRegressor(epochs=5, random_state=3).fit(X, y).predict(X)
    other = MLBasicsRegressor(epochs=5, random_state=4).fit(X, y).predict(X)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_a_dataframe_names_the_features(data: tuple[Any, Any]) -> None:
    X, y = data
    frame = pd.DataFrame(X, columns=["area", "rooms", "age", "distance"])
    fitted = MLBasicsRegressor(epochs=5, random_state=0).fit(frame, pd.Series(y, name="price"))
    assert list(fitted.feature_names_in_) == ["area", "rooms", "age", "distance"]
    assert fitted.result_.dataset.feature_names == ("area", "rooms", "age", "distance")
    assert fitted.predict(frame.head(3)).shape == (3,)


def test_several_targets_predict_several_columns(data: tuple[Any, Any]) -> None:
    X, y = data
    Y = np.stack([y, -2 * y], axis=1)
    fitted = MLBasicsRegressor(epochs=60, random_state=0).fit(X, Y)
    assert fitted.n_outputs_ == 2
    assert fitted.predict(X).shape == (120, 2)
    assert fitted.score(X, Y) > 0.9


def test_every_training_choice_reaches_the_experiment(data: tuple[Any, Any]) -> None:
    X, y = data
    estimator = MLBasicsRegressor(
        model="mlp",
        hidden=(5, 3),
        activation="tanh",
        optimizer="sgd",
        lr=0.02,
        momentum=0.5,
        epochs=7,
        batch_size=16,
        standardize="features",
        validation_fraction=0.2,
        early_stopping=True,
        patience=3,
        random_state=11,
        device="cpu",
    ).fit(X, y)
    experiment = estimator.result_.experiment
    assert experiment.model.params == {"hidden": [5, 3], "activation": "tanh"}
    assert experiment.optimizer.params == {"lr": 0.02, "momentum": 0.5}
    assert (experiment.epochs, experiment.batch_size, experiment.standardize) == (7, 16, "features")
    assert (experiment.validation, experiment.device) == (0.2, "cpu")
    assert [(c.name, c.params["patience"]) for c in experiment.callbacks] == [("early-stopping", 3)]
    assert estimator.result_.split_sizes["validation"] == 24
    assert estimator.result_.validation_history


def test_the_loss_and_linear_model_by_registry_name(data: tuple[Any, Any]) -> None:
    X, y = data
    fitted = MLBasicsRegressor(model="linear", optimizer="lstsq", standardize="none").fit(X, y)
    # Least squares in closed form: the same fit as scikit-learn's (float32 against float64).
    reference = Ridge(alpha=0.0).fit(X, y)
    np.testing.assert_allclose(fitted.predict(X), reference.predict(X), rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model": "mpl"}, r"MLBasicsRegressor: unknown model 'mpl'.*did you mean 'mlp'"),
        ({"model": "linear", "hidden": (4,)}, r"model 'linear'.*hidden"),
        ({"standardize": "all"}, r"standardize must be one of"),
    ],
)
def test_a_refused_setting_is_a_value_error_naming_it(
    data: tuple[Any, Any], params: dict[str, Any], message: str
) -> None:
    X, y = data
    with pytest.raises(ValueError, match=message):
        MLBasicsRegressor(epochs=2, **params).fit(X, y)


def test_one_sample_cannot_be_standardized() -> None:
    with pytest.raises(ValueError, match="needs at least 2 samples, got 1 sample"):
        MLBasicsRegressor(epochs=2).fit([[1.0, 2.0]], [3.0])
    fitted = MLBasicsRegressor(epochs=2, standardize="none").fit([[1.0, 2.0]], [3.0])
    assert fitted.predict([[1.0, 2.0]]).shape == (1,)


def test_the_classifier_waits_for_classification() -> None:
    with pytest.raises(NotImplementedError, match="needs classification in mlbasics"):
        MLBasicsClassifier().fit([[0.0], [1.0]], [0, 1])
    assert MLBasicsClassifier(lr=0.1).get_params()["lr"] == 0.1


def test_fitting_warns_of_nothing(data: tuple[Any, Any]) -> None:
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MLBasicsRegressor(epochs=3).fit(X.astype(np.float32), y).predict(X)


def test_mlbasics_itself_imports_neither_scikit_learn_nor_pandas() -> None:
    script = (
        "import sys, numpy, mlbasics\n"
        "x = numpy.arange(12, dtype=numpy.float32).reshape(6, 2)\n"
        "mlbasics.train(dataset=(x, x.sum(1)), model='linear', epochs=2)\n"
        "print(sorted(m for m in ('sklearn', 'pandas') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
    assert mlbasics.Dataset  # the in-process suite has both imported: the check needs its own process

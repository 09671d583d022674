"""The built-in components: the lecture's tables, linear and MLP models, SGD, MSE and least squares;
for class labels, three datasets, cross-entropy and the usual scores.

This is an ordinary plugin, registered through the ``mlbasics`` entry-point group like anyone else's
(``builtins = "mlbasics.builtin"``). This module holds only the specs; each factory is a string
pointing into the module of its kind, so listing components does not import torch.
"""

from __future__ import annotations

from mlbasics.core.callbacks import RUN_TAG
from mlbasics.core.hookspecs import hookimpl
from mlbasics.core.specs import ONE_LOGIT_TAG, ComponentSpec, Param

_HERE = __name__

_SEED = Param(name="seed", type=int, default=0, ge=0, help="seed of the generator that draws the data")
_CLASSIFICATION = frozenset({"classification"})
_BOTH = frozenset({"regression", "classification"})


def _classes(default: int) -> Param:
    return Param(name="classes", type=int, default=default, ge=2, le=1000, help="number of classes")


@hookimpl
def mlbasics_datasets() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            kind="dataset",
            name="attendance",
            factory=f"{_HERE}.datasets:attendance",
            summary="The lecture's table: attendance score -> mid-term score, 5 students",
        ),
        ComponentSpec(
            kind="dataset",
            name="tiny",
            factory=f"{_HERE}.datasets:tiny",
            summary="x = 1, 2, 3 -> y = 1, 2, 3: the smallest regression there is",
        ),
        ComponentSpec(
            kind="dataset",
            name="scores",
            factory=f"{_HERE}.datasets:scores",
            summary="(attendance, quiz, assignment 1) -> mid-term score, 5 students",
        ),
        ComponentSpec(
            kind="dataset",
            name="synthetic-linear",
            factory=f"{_HERE}.datasets:synthetic_linear",
            summary="y = X·weights + bias (+ Gaussian noise), X ~ N(0, 1); knows its ground truth",
            params=(
                Param(name="n", type=int, default=100, ge=1, help="number of samples"),
                Param(
                    name="weights",
                    type=list[float],
                    default=[1.0, 2.0, 3.0],
                    min_length=1,
                    help="true weights, one per feature",
                ),
                Param(name="bias", type=float, default=5.0, help="true bias"),
                Param(name="noise", type=float, default=0.0, ge=0, help="standard deviation of the noise"),
                _SEED,
            ),
        ),
        ComponentSpec(
            kind="dataset",
            name="quadratic",
            factory=f"{_HERE}.datasets:quadratic",
            summary="y = x² + 3 with x ~ N(0, 1): the curve the lecture's MLP learns",
            params=(
                Param(name="n", type=int, default=1000, ge=1, help="number of samples"),
                Param(name="noise", type=float, default=0.0, ge=0, help="standard deviation of the noise"),
                _SEED,
            ),
        ),
        ComponentSpec(
            kind="dataset",
            name="xor",
            factory=f"{_HERE}.datasets:xor",
            summary="The four rows of x1 XOR x2 -> class 0 or 1: no line separates the classes",
            tasks=_CLASSIFICATION,
        ),
        ComponentSpec(
            kind="dataset",
            name="blobs",
            factory=f"{_HERE}.datasets:blobs",
            summary="Gaussian clusters, one per class, centres uniform in [-10, 10] (as make_blobs)",
            params=(
                _classes(3),
                Param(
                    name="n", type=int, default=300, ge=2, help="number of samples, shared among the classes"
                ),
                Param(name="features", type=int, default=2, ge=1, le=1000, help="number of features"),
                Param(
                    name="spread", type=float, default=1.0, gt=0, help="standard deviation around each centre"
                ),
                _SEED,
            ),
            tasks=_CLASSIFICATION,
        ),
        ComponentSpec(
            kind="dataset",
            name="spirals",
            factory=f"{_HERE}.datasets:spirals",
            summary="Interleaved spiral arms in the plane, one per class: a boundary no line draws",
            params=(
                _classes(2),
                Param(
                    name="n", type=int, default=300, ge=2, help="number of samples, shared among the classes"
                ),
                Param(name="turns", type=float, default=1.0, gt=0, le=10, help="turns of each arm"),
                Param(name="noise", type=float, default=0.05, ge=0, help="standard deviation of the noise"),
                _SEED,
            ),
            tasks=_CLASSIFICATION,
        ),
        ComponentSpec(
            kind="dataset",
            name="csv",
            factory=f"{_HERE}.datasets:csv_table",
            summary="Your own table from a CSV file with a header row (a target of words: class labels)",
            tasks=_BOTH,
            params=(
                Param(name="path", type=str, help="the CSV file"),
                Param(name="target", type=str, default=None, help="target column (default: the last one)"),
                Param(
                    name="targets",
                    type=list[str],
                    default=None,
                    min_length=1,
                    help="several target columns, in place of target: the model gets one output per column",
                ),
                Param(
                    name="features",
                    type=list[str],
                    default=None,
                    min_length=1,
                    help="feature columns (default: all but the targets)",
                ),
                Param(
                    name="memory_map",
                    type=bool,
                    default=False,
                    help="read the file once into a binary cache beside it and map it: for files larger than memory",
                ),
                Param(
                    name="classes",
                    type=bool,
                    default=False,
                    help="read the target as class labels even if it holds numbers (a column of words always is)",
                ),
            ),
        ),
    ]


_HIDDEN = Param(
    name="hidden",
    type=list[int],
    default=[6, 10, 6],
    ge=1,
    min_length=1,
    help="sizes of the hidden layers",
)


@hookimpl
def mlbasics_models() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            kind="model",
            name="linear",
            factory=f"{_HERE}.models:linear",
            summary="H(x) = Wx + b: one torch.nn.Linear layer",
            params=(Param(name="bias", type=bool, default=True, help="learn the bias b"),),
        ),
        ComponentSpec(
            kind="model",
            name="logistic",
            factory=f"{_HERE}.models:linear",
            summary="Logistic regression: H(x) = Wx + b, one output per class read through softmax",
            params=(Param(name="bias", type=bool, default=True, help="learn the bias b"),),
            tasks=_CLASSIFICATION,
        ),
        ComponentSpec(
            kind="model",
            name="mlp",
            factory=f"{_HERE}.models:mlp",
            summary="Linear layers with an activation between them (the lecture's 1-6-10-6-1 ReLU net)",
            params=(
                _HIDDEN,
                Param(
                    name="activation",
                    type=str,
                    default="relu",
                    component="activation",
                    help="activation between the layers",
                ),
            ),
        ),
        ComponentSpec(
            kind="model",
            name="linear-stack",
            factory=f"{_HERE}.models:linear_stack",
            summary="Linear layers with nothing between them: collapses to one linear map",
            params=(_HIDDEN,),
        ),
    ]


@hookimpl
def mlbasics_activations() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            kind="activation",
            name=name,
            factory=f"{_HERE}.activations:{name}",
            summary=summary,
            tags={"identity"} if name == "identity" else set(),
        )
        for name, summary in [
            ("relu", "max(0, x)"),
            ("sigmoid", "1 / (1 + e^-x)"),
            ("tanh", "hyperbolic tangent"),
            ("identity", "x unchanged: no non-linearity at all"),
        ]
    ]


@hookimpl
def mlbasics_losses() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            kind="loss",
            name="mse",
            factory=f"{_HERE}.losses:mse",
            summary="Mean squared error (1/n)·Σ(H(x) - y)², as torch.nn.MSELoss",
            tags={"least-squares"},
        ),
        ComponentSpec(
            kind="loss",
            name="sse-half",
            factory=f"{_HERE}.losses:sse_half",
            summary="Sum of squared errors / 2, the loss of the lecture's NumPy slide",
            tags={"least-squares"},
        ),
        ComponentSpec(
            kind="loss",
            name="cross-entropy",
            factory=f"{_HERE}.losses:cross_entropy",
            summary="-log softmax(H(x))[class], the mean over rows (torch.nn.CrossEntropyLoss on logits)",
            params=(
                Param(
                    name="weight",
                    type=list[float],
                    default=None,
                    ge=0,
                    min_length=2,
                    help="a weight per class, in the classes' order (default: all 1)",
                ),
                Param(
                    name="label_smoothing",
                    type=float,
                    default=0.0,
                    ge=0,
                    le=1,
                    help="the share of each target spread evenly over all classes",
                ),
            ),
            tasks=_CLASSIFICATION,
        ),
        ComponentSpec(
            kind="loss",
            name="binary-cross-entropy",
            factory=f"{_HERE}.losses:binary_cross_entropy",
            summary="Two classes, one output z = the logit of class 1: -log σ(±z) (torch.nn.BCEWithLogitsLoss)",
            params=(
                Param(
                    name="pos_weight",
                    type=float,
                    default=None,
                    gt=0,
                    help="weight of the rows of class 1 against those of class 0 (default: 1)",
                ),
            ),
            tags={ONE_LOGIT_TAG},
            tasks=_CLASSIFICATION,
        ),
    ]


@hookimpl
def mlbasics_optimizers() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            kind="optimizer",
            name="sgd",
            factory=f"{_HERE}.optimizers:sgd",
            summary="Gradient descent: w <- w - lr·∇L (torch.optim.SGD)",
            params=(
                Param(name="lr", type=float, default=0.01, gt=0, help="learning rate"),
                Param(name="momentum", type=float, default=0.0, ge=0, lt=1, help="momentum factor"),
                Param(name="weight_decay", type=float, default=0.0, ge=0, help="L2 penalty"),
            ),
            # How sweeps train many SGD runs as one vmapped ensemble.
            stacked=f"{_HERE}.optimizers:stacked_sgd",
        ),
        ComponentSpec(
            kind="optimizer",
            name="lstsq",
            factory=f"{_HERE}.optimizers:lstsq",
            summary="Least squares in closed form: the exact minimum for a linear model, in one step",
            tags={"closed-form"},
            # Class labels have no closed form: cross-entropy is minimised by steps.
            tasks=frozenset({"regression"}),
        ),
    ]


@hookimpl
def mlbasics_metrics() -> list[ComponentSpec]:
    def metric(name: str, function: str, summary: str) -> ComponentSpec:
        return ComponentSpec(kind="metric", name=name, factory=f"{_HERE}.metrics:{function}", summary=summary)

    average = Param(
        name="average",
        type=str,
        default="macro",
        choices=("macro", "weighted", "micro"),
        help="over the classes: macro (each class alike), weighted (by its rows) or micro (all counts together)",
    )

    def classification(name: str, function: str, summary: str, *params: Param) -> ComponentSpec:
        return ComponentSpec(
            kind="metric",
            name=name,
            factory=f"{_HERE}.metrics:{function}",
            summary=summary,
            params=params,
            tasks=_CLASSIFICATION,
        )

    return [
        metric("mse", "mse", "Mean squared error, in the data's units (lower is better)"),
        metric("rmse", "rmse", "Root mean squared error, in the target's units (lower is better)"),
        metric("mae", "mae", "Mean absolute error, in the target's units (lower is better)"),
        metric("max-error", "max_error", "The largest absolute error of any row (lower is better)"),
        metric("r2", "r2", "Coefficient of determination R² = 1 - SS_res/SS_tot (1 is a perfect fit)"),
        metric(
            "explained-variance",
            "explained_variance",
            "1 - Var(target - prediction)/Var(target): R² that ignores a constant offset",
        ),
        classification("accuracy", "accuracy", "The share of rows whose predicted class is right"),
        classification(
            "balanced-accuracy",
            "balanced_accuracy",
            "The mean over classes of the share of each class's rows predicted right",
        ),
        classification(
            "precision", "precision", "Of the rows predicted as a class, the share that are of it", average
        ),
        classification("recall", "recall", "Of a class's rows, the share predicted as it", average),
        classification("f1", "f1", "The harmonic mean of precision and recall per class", average),
        classification(
            "log-loss",
            "log_loss",
            "The mean of -log p(true class), p clipped to [eps, 1 - eps] (lower is better)",
        ),
        classification(
            "top-k-accuracy",
            "top_k_accuracy",
            "The share of rows whose class is among the k highest-scoring",
            Param(name="k", type=int, default=2, ge=1, help="how many of the highest-scoring classes count"),
        ),
    ]


def _monitor(what: str) -> tuple[Param, Param, Param]:
    return (
        Param(
            name="monitor",
            type=str,
            default=None,
            help=f"the value {what} watches: loss, validation_loss, a metric (r2) or validation_ metric "
            "(default: validation_loss with validation rows, else loss)",
        ),
        Param(
            name="mode",
            type=str,
            default="auto",
            choices=("auto", "min", "max"),
            help="which way is better: auto takes the value's own (min for a loss, max for r2)",
        ),
        Param(name="min_delta", type=float, default=0.0, ge=0, help="the least change that counts as better"),
    )


def _check_every(what: str) -> Param:
    return Param(
        name="check_every",
        type=int,
        default=10,
        ge=1,
        help=f"epochs between checks (sync points fall on their multiples, so {what} at the same "
        "epochs on any machine and when resumed)",
    )


_LOG_PARAMS = (
    Param(
        name="every", type=int, default=None, ge=1, help="a row every N epochs (default: every sync point)"
    ),
)


@hookimpl
def mlbasics_callbacks() -> list[ComponentSpec]:
    monitor, mode, min_delta = _monitor("it")
    return [
        ComponentSpec(
            kind="callback",
            name="early-stopping",
            factory=f"{_HERE}.callbacks:early_stopping",
            summary="Stops training once the monitored value stops improving; keeps the best weights",
            params=(
                monitor,
                mode,
                Param(
                    name="patience",
                    type=int,
                    default=100,
                    ge=1,
                    help="epochs without improvement before training stops",
                ),
                min_delta,
                _check_every("it stops"),
                Param(
                    name="restore_best",
                    type=bool,
                    default=True,
                    help="end with the weights of the best check, whether training stops early or not",
                ),
            ),
        ),
        ComponentSpec(
            kind="callback",
            name="csv-logger",
            factory=f"{_HERE}.callbacks:csv_logger",
            summary="One CSV row per sync point: epoch, losses, metrics, learning rate, seconds",
            params=(
                Param(name="path", type=str, default="training-log.csv", help="the CSV file"),
                *_LOG_PARAMS,
            ),
        ),
        ComponentSpec(
            kind="callback",
            name="jsonl-logger",
            factory=f"{_HERE}.callbacks:jsonl_logger",
            summary="One JSON line per sync point: epoch, losses, metrics, learning rate, seconds",
            params=(
                Param(name="path", type=str, default="training-log.jsonl", help="the JSON-lines file"),
                *_LOG_PARAMS,
            ),
        ),
        ComponentSpec(
            kind="callback",
            name="lr-step",
            factory=f"{_HERE}.callbacks:lr_step",
            summary="Learning-rate schedule: multiply the learning rate by gamma every step_size epochs",
            params=(
                Param(name="step_size", type=int, default=1000, ge=1, help="epochs between decays"),
                Param(name="gamma", type=float, default=0.1, gt=0, help="factor of each decay"),
            ),
        ),
        ComponentSpec(
            kind="callback",
            name="lr-cosine",
            factory=f"{_HERE}.callbacks:lr_cosine",
            summary="Learning-rate schedule: half a cosine from the learning rate down to eta_min",
            params=(
                Param(
                    name="epochs",
                    type=int,
                    default=None,
                    ge=1,
                    help="epochs the curve spans (default: the run's epochs)",
                ),
                Param(name="eta_min", type=float, default=0.0, ge=0, help="the learning rate at the end"),
                Param(name="every", type=int, default=10, ge=1, help="epochs between updates of the rate"),
            ),
        ),
        ComponentSpec(
            kind="callback",
            name="lr-plateau",
            factory=f"{_HERE}.callbacks:lr_plateau",
            summary="Learning-rate schedule: multiply the learning rate by factor when the monitored value stalls",
            params=(
                monitor,
                mode,
                Param(name="factor", type=float, default=0.1, gt=0, lt=1, help="factor of each reduction"),
                Param(
                    name="patience",
                    type=int,
                    default=100,
                    ge=1,
                    help="epochs without improvement before a reduction",
                ),
                min_delta,
                Param(
                    name="min_lr", type=float, default=0.0, ge=0, help="the rate is never reduced below this"
                ),
                _check_every("it reduces"),
            ),
        ),
        ComponentSpec(
            kind="callback",
            name="divergence-check",
            factory=f"{_HERE}.callbacks:divergence_check",
            summary="Stops a run whose loss or weights stop being finite (on in every run: --divergence-threshold)",
            params=(
                Param(
                    name="threshold",
                    type=float,
                    default=None,
                    gt=1,
                    help="also stop once the loss exceeds this many times the first epoch's",
                ),
            ),
            tags={RUN_TAG},
        ),
        ComponentSpec(
            kind="callback",
            name="progress-bar",
            factory=f"{_HERE}.callbacks:progress_bar",
            summary="The progress bar on stderr (on in every run unless --quiet or --json)",
            params=(
                Param(name="transient", type=bool, default=False, help="remove the bar when training ends"),
            ),
            tags={RUN_TAG},
        ),
        ComponentSpec(
            kind="callback",
            name="checkpoint",
            factory=f"{_HERE}.callbacks:checkpoint",
            summary="Checkpoints the run into a run folder (on with --save DIR; --checkpoint-every N)",
            params=(
                Param(name="folder", type=str, help="the run folder"),
                Param(name="every", type=int, default=None, ge=1, help="also checkpoint every N epochs"),
                Param(name="overwrite", type=bool, default=False, help="replace a run already in the folder"),
            ),
            tags={RUN_TAG},
        ),
    ]

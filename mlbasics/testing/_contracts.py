"""The contract of each component kind, as check functions.

Each check gets a :class:`Subject` (a spec, the registry that builds it, the params to build it
with, and the device) and raises :class:`Problem` saying what is wrong. Inputs come from torch
generators with fixed seeds, so a failure is the same on every run.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs
import torch
from torch import nn

from mlbasics.core.callbacks import Callback, CallbackError
from mlbasics.core.registry import MODEL_SIZE_PARAMS, Registry
from mlbasics.core.specs import ComponentSpec
from mlbasics.data.dataset import Dataset
from mlbasics.engine.metrics import Metric
from mlbasics.engine.solvers import ClosedFormSolver
from mlbasics.errors import ComponentBuildError, MlbasicsError, PluginBugError, ValidationError, one_line

if TYPE_CHECKING:
    from mlbasics.engine.experiment import Experiment
    from mlbasics.engine.results import TrainResult
    from mlbasics.engine.setup import Setup


class Problem(Exception):
    """A component broke its contract; the message says how."""


@attrs.frozen
class Subject:
    """The component under check and everything needed to build it."""

    spec: ComponentSpec
    registry: Registry
    params: Mapping[str, Any]
    device: torch.device

    def given(self, /, **extra: Any) -> dict[str, Any]:
        """The given params, then ``extra``, unvalidated; a model's sizes are 1 unless given."""
        params = {**self.params, **extra}
        if self.spec.kind == "model":
            params = dict.fromkeys(MODEL_SIZE_PARAMS, 1) | params
        return params

    def values(self, /, **extra: Any) -> dict[str, Any]:
        """The complete, validated params: the given ones, then ``extra``, then the defaults."""
        try:
            return self.registry.resolve(self.spec.kind, self.spec.name, self.given(**extra))[1]
        except ValidationError as exc:
            given = f"params {dict(self.params)}" if self.params else "its defaults"
            raise Problem(
                f"cannot be built from {given}: {'; '.join(exc.problems)} "
                f"(give params with params={{'{self.spec.kind}:{self.spec.name}': {{...}}}})"
            ) from None

    def build(self, /, *args: Any, **extra: Any) -> Any:
        return instantiate(self.registry, self.spec, self.values(**extra), *args)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(0)


CheckFunction = Callable[[Subject], None]


def instantiate(registry: Registry, spec: ComponentSpec, values: dict[str, Any], /, *args: Any) -> Any:
    """Build as the registry does, but let the factory's own exception out: the registry turns it
    into one line for users, while the kit reports (and judges) what the factory itself raised."""
    try:
        return registry.instantiate(spec, values, *args)
    except (ComponentBuildError, PluginBugError) as exc:
        raise exc.error from None


def release(component: Any) -> None:
    """Close what a component claimed when it was built (a ``checkpoint`` callback locks its run
    folder from then on), so that the next build in a check may claim it again."""
    close = getattr(component, "close", None)
    if callable(close):
        close()


def describe(value: Any) -> str:
    return type(value).__name__


def _nonfinite(tensor: torch.Tensor) -> int:
    return int((~torch.isfinite(tensor)).sum())


def _identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, dtype and values, NaN in the same places counting as equal."""
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and bool(torch.isclose(a, b, rtol=0, atol=0, equal_nan=True).all())
    )


# -- datasets --------------------------------------------------------------------------------------


def _dataset(subject: Subject) -> Dataset:
    data = subject.build()
    if not isinstance(data, Dataset):
        raise Problem(f"factory returned {describe(data)}, expected a mlbasics.Dataset")
    return data


def dataset_contract(subject: Subject) -> None:
    """Finite float32 features (n, d) and targets (n, k), with n >= 1, d >= 1 and k >= 1; or, for
    class labels, int64 class indices (n,) into two or more ``classes``. Its task (regression,
    or classification for class labels) is one its spec declares."""
    data = _dataset(subject)
    n, d = data.features.shape
    if n < 1 or d < 1:
        raise Problem(f"features have shape {(n, d)}; a dataset needs at least one sample and one feature")
    if not subject.spec.serves(data.task):
        raise Problem(
            f"returns {data.task} data (classes {data.classes}), but its spec declares tasks "
            f"{sorted(subject.spec.tasks)}: declare tasks={{{data.task!r}}}"
        )
    labels = data.classes is not None
    for name, tensor in (("features", data.features), ("targets", data.targets)):
        if labels and name == "targets":
            continue  # int64 class indices, in range: the Dataset checked them
        if tensor.dtype != torch.float32:
            raise Problem(f"{name} are {tensor.dtype}, expected torch.float32")
        bad = _nonfinite(tensor)
        if bad:
            raise Problem(f"{name} hold {bad} non-finite value(s) (NaN or infinity)")
    if labels:
        if data.targets.dtype != torch.int64 or tuple(data.targets.shape) != (n,):
            raise Problem(
                f"class targets are {data.targets.dtype} {tuple(data.targets.shape)}, expected int64 ({n},)"
            )
    elif data.targets.ndim != 2 or data.targets.shape[0] != n or data.targets.shape[1] < 1:
        raise Problem(f"targets have shape {tuple(data.targets.shape)}, expected ({n}, k), k >= 1")
    if data.ground_truth is not None and len(data.ground_truth.weights) != d:
        raise Problem(f"ground truth has {len(data.ground_truth.weights)} weights for {d} features")


def dataset_reproducible(subject: Subject) -> None:
    """Built twice from the same params, a dataset is the same, to the bit."""
    first, second = _dataset(subject), _dataset(subject)
    if first.classes != second.classes:
        raise Problem(
            f"two builds from the same params have different classes: {first.classes} and {second.classes}"
        )
    for name in ("features", "targets"):
        a, b = getattr(first, name), getattr(second, name)
        if not _identical(a, b):
            raise Problem(
                f"two builds from the same params have different {name}: draw random numbers from a "
                "torch.Generator seeded by a param (such as `seed`), not from the global RNG"
            )


# -- models ----------------------------------------------------------------------------------------

#: (in_features, out_features, batch sizes) the model is probed with: out_features is the number of
#: target columns k, 1 for the lecture's tables (targets (n, 1)), more for a CSV with several targets,
#: or the number of classes (10 for digits).
_MODEL_INPUTS: Final = ((1, 1, (1, 4)), (3, 1, (1, 5)), (3, 2, (1, 5)), (4, 10, (1, 5)))


def _model(subject: Subject, in_features: int, out_features: int = 1) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # as training does before calling the factory
        model = subject.build(in_features=in_features, out_features=out_features)
    if not isinstance(model, nn.Module):
        raise Problem(f"factory returned {describe(model)}, expected a torch.nn.Module")
    return model.to(subject.device)


def model_shapes(subject: Subject) -> None:
    """(n, d) float32 in, finite (n, k) float32 out, on the same device, for several n, d and k."""
    generator = subject.generator()
    for in_features, out_features, batches in _MODEL_INPUTS:
        model = _model(subject, in_features, out_features)
        for n in batches:
            x = torch.randn(n, in_features, generator=generator).to(subject.device)
            with torch.no_grad():
                y = model(x)
            if not isinstance(y, torch.Tensor):
                raise Problem(f"forward returned {describe(y)}, expected a tensor")
            if tuple(y.shape) != (n, out_features):
                raise Problem(
                    f"maps input shaped ({n}, {in_features}) to {tuple(y.shape)}, expected "
                    f"({n}, {out_features}) for out_features={out_features}: targets are (n, k) (or one "
                    "output per class), and any other shape would broadcast against them"
                )
            if y.dtype != torch.float32 or y.device != x.device:
                raise Problem(f"returns {y.dtype} on {y.device} for float32 input on {x.device}")
            if _nonfinite(y):
                raise Problem(f"returns non-finite values for finite input shaped ({n}, {in_features})")


def model_differentiable(subject: Subject) -> None:
    """The output depends differentiably on the parameters: finite gradients reach them."""
    model = _model(subject, 3)
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise Problem("has no trainable parameters, so no optimizer can fit it")
    y = model(torch.randn(5, 3, generator=subject.generator()).to(subject.device))
    if not isinstance(y, torch.Tensor) or not y.requires_grad:
        raise Problem("output does not require grad: it is cut off from the parameters")
    y.square().sum().backward()  # type: ignore[no-untyped-call]
    reached = [name for name, p in trainable if p.grad is not None]
    if not reached:
        raise Problem("backward() reached none of the parameters")
    broken = [name for name, p in trainable if p.grad is not None and _nonfinite(p.grad)]
    if broken:
        raise Problem(f"gradients of {', '.join(broken)} are not finite")


def model_reproducible(subject: Subject) -> None:
    """Under the same ``torch.manual_seed`` (which training sets), two builds are identical."""
    first, second = _model(subject, 3), _model(subject, 3)
    a, b = first.state_dict(), second.state_dict()
    differing = [name for name in a if name not in b or not _identical(a[name], b[name])]
    if differing or set(a) != set(b):
        raise Problem(
            f"two builds under torch.manual_seed(0) differ in {', '.join(differing) or 'their state'}: "
            "draw initial values from torch's global RNG, which mlbasics seeds before the factory runs"
        )


# -- activations -----------------------------------------------------------------------------------


def _activation(subject: Subject) -> nn.Module:
    activation = subject.build()
    if not isinstance(activation, nn.Module):
        raise Problem(f"factory returned {describe(activation)}, expected a torch.nn.Module")
    return activation


def activation_elementwise(subject: Subject) -> None:
    """Same shape, dtype and device out as in; each output depends on its own input alone."""
    activation = _activation(subject)
    activation.to(subject.device)
    generator = subject.generator()
    for shape in ((7,), (3, 5), (2, 3, 4)):
        x = (3 * torch.randn(shape, generator=generator)).to(subject.device)
        with torch.no_grad():
            y = activation(x)
            if not isinstance(y, torch.Tensor) or y.shape != x.shape:
                got = tuple(y.shape) if isinstance(y, torch.Tensor) else describe(y)
                raise Problem(f"maps shape {shape} to {got}: an activation must keep the shape")
            if y.dtype != x.dtype or y.device != x.device:
                raise Problem(f"maps {x.dtype} on {x.device} to {y.dtype} on {y.device}")
            flat = x.reshape(-1)
            alone = torch.cat([activation(flat[i : i + 1]).reshape(-1) for i in range(flat.numel())])
        mismatch = ~torch.isclose(alone, y.reshape(-1), rtol=1e-5, atol=1e-6, equal_nan=True)
        if mismatch.any():
            i = int(mismatch.nonzero()[0])
            raise Problem(
                f"is not elementwise: input {float(flat[i]):.6g} gives {float(alone[i]):.6g} on its own "
                f"but {float(y.reshape(-1)[i]):.6g} among the {flat.numel()} inputs shaped {shape}"
            )


#: Probe points for gradcheck: a grid shifted off the integers and the quarter points, where kinks
#: usually sit (relu at 0, hardtanh at ±1, relu6 at 6).
_GRID: Final = torch.linspace(-4.0, 4.0, 33, dtype=torch.float64) + 0.0371


def activation_gradcheck(subject: Subject) -> None:
    """In float64, autograd agrees with finite differences (``torch.autograd.gradcheck``) at every
    probe point where the function has no kink; kinks are found from one-sided differences, which
    use only the forward pass. Runs on the CPU, as not every device has float64."""
    activation = _activation(subject)
    activation.to(torch.float64)
    h = 1e-4
    with torch.no_grad():
        shape = activation(_GRID).shape
        if shape != _GRID.shape:
            raise Problem(f"cannot be gradchecked: maps shape {tuple(_GRID.shape)} to {tuple(shape)}")
        left = (activation(_GRID) - activation(_GRID - h)) / h
        right = (activation(_GRID + h) - activation(_GRID)) / h
    scale = torch.maximum(left.abs(), right.abs()).clamp(min=1.0)
    smooth = (left - right).abs() <= 1e-2 * scale
    if int(smooth.sum()) < len(_GRID) // 2:
        raise Problem(f"has a kink at {len(_GRID) - int(smooth.sum())} of {len(_GRID)} points in [-4, 4]")
    points = _GRID[smooth].clone().requires_grad_()
    if torch.autograd.gradcheck(activation, (points,), eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=False):
        return
    (analytic,) = torch.autograd.grad(activation(points).sum(), points)
    with torch.no_grad():
        numeric = (activation(points + 1e-6) - activation(points - 1e-6)) / 2e-6
    i = int((analytic - numeric).abs().argmax())
    raise Problem(
        f"autograd disagrees with finite differences in float64: at x = {float(points[i].detach()):.6g} the "
        f"gradient is {float(analytic[i]):.6g}, finite differences give {float(numeric[i]):.6g}"
    )


# -- losses ----------------------------------------------------------------------------------------

#: (n, k, scale) of the (prediction, target) pairs a loss is probed with: k target columns.
_LOSS_INPUTS: Final = ((1, 1, 1.0), (5, 1, 1.0), (5, 1, 100.0), (16, 1, 0.01), (16, 1, 1.0), (5, 3, 1.0))


def _loss(subject: Subject, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    loss = subject.build()
    if not callable(loss):
        raise Problem(f"factory returned {describe(loss)}, expected a callable (prediction, target) -> loss")
    if isinstance(loss, nn.Module):
        loss.to(device)
    return loss  # type: ignore[no-any-return]


def loss_contract(subject: Subject) -> None:
    """A finite, non-negative scalar (0-dim) tensor with a finite gradient; 0 on a perfect prediction."""
    loss = _loss(subject, subject.device)
    generator = subject.generator()
    for n, k, scale in _LOSS_INPUTS:
        for _ in range(2):
            target = (scale * torch.randn(n, k, generator=generator)).to(subject.device)
            prediction = (scale * torch.randn(n, k, generator=generator)).to(subject.device)
            prediction.requires_grad_()
            value = loss(prediction, target)
            if not isinstance(value, torch.Tensor) or value.ndim != 0:
                got = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else describe(value)
                raise Problem(f"returns {got} for inputs shaped ({n}, {k}); a loss must be a 0-dim tensor")
            number = float(value.detach())
            if not math.isfinite(number) or number < 0:
                raise Problem(
                    f"is {number:.6g} for a prediction and target shaped ({n}, {k}) (values of "
                    f"size about {scale:g}); a loss must be finite and >= 0"
                )
            value.backward()  # type: ignore[no-untyped-call]
            if prediction.grad is None or _nonfinite(prediction.grad):
                raise Problem(f"has no finite gradient with respect to the prediction (n = {n})")
            perfect = float(loss(target.clone(), target))
            if abs(perfect) > 1e-6:
                raise Problem(f"is {perfect:.6g}, not 0, when the prediction equals the target (n = {n})")


def loss_least_squares(subject: Subject) -> None:
    """Tagged ``least-squares``: the least-squares solution is a stationary point of the loss, so
    ``lstsq`` minimises it. Checked in float64 on the CPU, with noisy data (a non-zero residual)."""
    loss = _loss(subject, torch.device("cpu"))
    if isinstance(loss, nn.Module):
        loss.to(torch.float64)
    generator = subject.generator()
    design = torch.cat([torch.randn(12, 3, generator=generator), torch.ones(12, 1)], dim=1).double()
    target = torch.randn(12, 1, generator=generator, dtype=torch.float64)
    solution = torch.linalg.lstsq(design, target).solution

    def gradient(theta: torch.Tensor) -> torch.Tensor:
        theta = theta.clone().requires_grad_()
        (grad,) = torch.autograd.grad(loss(design @ theta, target), theta)
        return grad

    at_solution, nearby = gradient(solution), gradient(solution + 0.1)
    if float(at_solution.norm()) > 1e-6 * max(float(nearby.norm()), 1e-12):
        raise Problem(
            f"is tagged 'least-squares', but its gradient at the least-squares solution has norm "
            f"{float(at_solution.norm()):.3g} ({float(nearby.norm()):.3g} at a point 0.1 away), so "
            "lstsq would not minimise it"
        )


# -- optimizers ------------------------------------------------------------------------------------

_STEPS: Final = 20
_LEAST_SQUARES = ComponentSpec(
    kind="loss", name="mse", factory=nn.MSELoss, summary="mean squared error", tags={"least-squares"}
)


def _conditioned_problem(subject: Subject) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """y = X·w + b on 16 samples with centred, orthonormal-times-√n feature columns (a convex
    quadratic with Hessian 2·I for the MSE), on the subject's device."""
    generator = subject.generator()
    raw = torch.cat([torch.ones(16, 1), torch.randn(16, 3, generator=generator)], dim=1).double()
    features = (torch.linalg.qr(raw).Q[:, 1:] * 4.0).float()
    weights, bias = torch.tensor([[1.0], [-2.0], [0.5]]), 0.3
    targets = features @ weights + bias
    return features.to(subject.device), targets.to(subject.device), weights, bias


def optimizer_minimises(subject: Subject) -> None:
    """A ``torch.optim.Optimizer`` lowers the MSE of a linear model (a convex quadratic) in
    20 steps; a :class:`~mlbasics.ClosedFormSolver` solves that least-squares problem exactly."""
    features, targets, weights, bias = _conditioned_problem(subject)
    model = nn.Linear(3, 1).to(subject.device)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    optimizer = subject.build(list(model.parameters()))

    def mse() -> torch.Tensor:
        return nn.functional.mse_loss(model(features), targets)

    if isinstance(optimizer, ClosedFormSolver):
        refusal = optimizer.check(model, _LEAST_SQUARES)
        if refusal:
            raise Problem(f"refuses a linear model under a least-squares loss: {refusal}")
        optimizer.solve(model, features, targets)
        found = torch.cat([model.weight.detach().cpu().flatten(), model.bias.detach().cpu()])
        expected = torch.cat([weights.flatten(), torch.tensor([bias])])
        if not torch.allclose(found, expected, rtol=1e-4, atol=1e-4):
            raise Problem(
                f"solved least squares as {found.tolist()}, but the exact solution is {expected.tolist()}"
            )
        return
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise Problem(
            f"factory returned {describe(optimizer)}, expected a torch.optim.Optimizer or a ClosedFormSolver"
        )
    before = float(mse().detach())
    for _ in range(_STEPS):
        if "closure" in subject.spec.tags:

            def closure() -> torch.Tensor:
                optimizer.zero_grad()
                value = mse()
                value.backward()  # type: ignore[no-untyped-call]
                return value

            optimizer.step(closure)  # type: ignore[arg-type]  # torch.optim calls closures returning the loss tensor
        else:
            optimizer.zero_grad()
            mse().backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    after = float(mse().detach())
    if not after < before:
        raise Problem(
            f"did not lower the loss of a convex quadratic: {_STEPS} steps from loss {before:.6g} "
            f"ended at {after:.6g}"
        )


_MEMBERS: Final = 3


def optimizer_stacked(subject: Subject) -> None:
    """The optimizer's stacked form (``ComponentSpec.stacked``) updates each of 3 members stacked
    along a first dimension as the optimizer updates that member alone, step after step for 20 steps
    of the same gradients: with the params shared by all members, and with each float param halved
    for one member where the declaration allows it. Within float32 tolerance: a stacked form may
    compute a per-member value in float32 where the optimizer uses a Python float."""
    if "closure" in subject.spec.tags:
        raise Problem("declares a stacked form but needs a closure, which a stacked update never gets")
    base = subject.values()
    halved = dict(base)
    for param in subject.spec.params:
        value = base[param.name]
        if param.item_type is float and not param.is_list and isinstance(value, float) and value != 0:
            # Where the declaration forbids half of it, the member keeps the shared value.
            with contextlib.suppress(Problem):
                halved[param.name] = subject.values(**{param.name: value / 2})[param.name]
    _follow_stacked(subject, [base] * _MEMBERS, "the same params")
    if halved != base:
        _follow_stacked(subject, [base, halved, base], "each float param halved for member 1")


def _follow_stacked(subject: Subject, members: list[dict[str, Any]], how: str) -> None:
    from mlbasics.sweeps.ensemble import stacked_hyper

    update = subject.spec.load_stacked()
    assert update is not None
    generator = subject.generator()
    start = torch.randn(len(members), 4, 3, generator=generator).to(subject.device)
    grads = [torch.randn(len(members), 4, 3, generator=generator).to(subject.device) for _ in range(_STEPS)]
    singles = [start[m].clone() for m in range(len(members))]
    optimizers = [
        subject.registry.instantiate(subject.spec, values, [single])
        for values, single in zip(members, singles, strict=True)
    ]
    hyper = stacked_hyper(members, subject.device, start.dtype)
    if isinstance(hyper, str):
        raise Problem(f"its params cannot be stacked ({how}): {hyper}")
    params: dict[str, torch.Tensor] = {"weight": start.clone()}
    state: dict[str, Any] = {}
    for step, grad in enumerate(grads, start=1):
        for m, (single, optimizer) in enumerate(zip(singles, optimizers, strict=True)):
            single.grad = grad[m].clone()
            optimizer.step()
        try:
            with torch.no_grad():
                params, state = update(params, {"weight": grad}, state, hyper)
        except Exception as exc:
            raise Problem(f"its stacked form raised at step {step} ({how}): {one_line(exc)}") from exc
        alone = torch.stack(singles)
        if not torch.allclose(params["weight"], alone, rtol=1.3e-6, atol=1e-5):
            difference = float((params["weight"] - alone).abs().max())
            raise Problem(
                f"its stacked form departs from the optimizer at step {step} ({how}): parameters "
                f"differ by up to {difference:.3g}"
            )


# -- metrics ---------------------------------------------------------------------------------------

#: (n, k, scale) of the (prediction, target) pairs a metric is probed with: parts of one row (a
#: small validation part) to 16, one target column or three, values of size 0.01 to 100.
_METRIC_INPUTS: Final = ((1, 1, 1.0), (2, 1, 1.0), (5, 1, 1.0), (5, 1, 100.0), (16, 1, 0.01), (16, 3, 1.0))
#: How close two computations of a metric in float32 must be when they differ only in the order of
#: their sums (rows permuted, members computed together or alone). A sum of at most 16 terms rounds
#: by less than 16 · 2⁻²⁴ ≈ 1e-6 of the sum of the terms' magnitudes: relatively, for an error;
#: absolutely, about twice that, for a score 1 - A/B such as R² near 0, where the ratio cancels.
#: Both bounds times five leave a margin; the probes that compare orders draw errors of size 1 and
#: more, so that no metric's value is small enough for the absolute part to hide a real difference.
_METRIC_RTOL: Final = 1e-5
_METRIC_ATOL: Final = 1e-5


def _metric(subject: Subject) -> Metric:
    metric = subject.build()
    if not isinstance(metric, Metric):
        raise Problem(f"factory returned {describe(metric)}, expected a mlbasics.Metric")
    if not math.isfinite(metric.best):
        raise Problem(f"declares best = {metric.best}; the value of a perfect prediction must be finite")
    return metric


def _pair(
    subject: Subject, generator: torch.Generator, shape: tuple[int, ...], scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random (prediction, target) pair shaped ``shape``, values of size about ``scale``."""
    target = scale * torch.randn(shape, generator=generator)
    prediction = scale * torch.randn(shape, generator=generator)
    return prediction.to(subject.device), target.to(subject.device)


def _score(metric: Metric, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The metric of a pair, checked to be a float tensor with the pair's leading dimensions."""
    what = f"a prediction and target shaped {tuple(prediction.shape)}"
    value = metric(prediction, target)
    expected = tuple(prediction.shape[:-2])
    if not isinstance(value, torch.Tensor):
        raise Problem(f"returns {describe(value)} for {what}; a metric returns a tensor")
    if tuple(value.shape) != expected:
        raise Problem(
            f"returns shape {tuple(value.shape)} for {what}, expected {expected}: a metric reduces the "
            "last two dimensions (rows, outputs) and keeps any before them"
        )
    if not value.is_floating_point() or value.device != prediction.device:
        raise Problem(f"returns {value.dtype} on {value.device} for float32 input on {prediction.device}")
    return value


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_METRIC_RTOL, abs_tol=_METRIC_ATOL)


def metric_contract(subject: Subject) -> None:
    """A finite 0-dim float tensor for (n, k) inputs on the device; ``best`` on a perfect
    prediction, and no prediction scores better than ``best``."""
    metric = _metric(subject)
    generator = subject.generator()
    for n, k, scale in _METRIC_INPUTS:
        prediction, target = _pair(subject, generator, (n, k), scale)
        value = float(_score(metric, prediction, target))
        if not math.isfinite(value):
            raise Problem(
                f"is {value} for a prediction and target shaped ({n}, {k}) (values of size about "
                f"{scale:g}); a metric must be finite on any part, even one of a single row"
            )
        if metric.better(value, metric.best) and not _close(value, metric.best):
            raise Problem(
                f"scores {value:.6g} on an imperfect prediction shaped ({n}, {k}), better than its best "
                f"{metric.best:g} (mode {metric.mode!r}): best is the value of a perfect prediction"
            )
        # A perfect prediction makes every error exactly 0; a metric that compares the two another
        # way (a correlation) rounds in float32, within the tolerance of _METRIC_RTOL.
        perfect = float(_score(metric, target.clone(), target))
        if not _close(perfect, metric.best):
            raise Problem(
                f"is {perfect:.6g} when the prediction equals the target (shaped ({n}, {k})), but "
                f"declares best = {metric.best:g}"
            )


def metric_row_order(subject: Subject) -> None:
    """Permuting the rows of the prediction and the target together does not change the value:
    training rows come in any order (shuffled, split, read in batches)."""
    metric = _metric(subject)
    generator = subject.generator()
    for n, k, scale in ((5, 1, 1.0), (16, 1, 100.0), (16, 3, 1.0)):
        prediction, target = _pair(subject, generator, (n, k), scale)
        value = float(_score(metric, prediction, target))
        for _ in range(3):
            order = torch.randperm(n, generator=generator).to(subject.device)
            permuted = float(_score(metric, prediction[order], target[order]))
            if not _close(permuted, value):
                raise Problem(
                    f"depends on the order of the rows: {value:.6g} for a prediction and target shaped "
                    f"({n}, {k}), {permuted:.6g} for the same rows in another order"
                )


_METRIC_MEMBERS: Final = 3


def metric_batched(subject: Subject) -> None:
    """A leading dimension (a vmapped ensemble's members) is kept: predictions and targets shaped
    (3, n, k) give 3 values, each the value of that member's pair alone."""
    metric = _metric(subject)
    generator = subject.generator()
    for n, k, scale in ((1, 1, 1.0), (5, 1, 1.0), (16, 3, 10.0)):
        prediction, target = _pair(subject, generator, (_METRIC_MEMBERS, n, k), scale)
        together = _score(metric, prediction, target).tolist()
        for member, value in enumerate(together):
            alone = float(_score(metric, prediction[member], target[member]))
            if not _close(value, alone):
                raise Problem(
                    f"gives member {member} of a batch shaped {tuple(prediction.shape)} the value "
                    f"{value:.6g}, but {alone:.6g} for that member's ({n}, {k}) pair alone: reduce only "
                    "the last two dimensions"
                )


def metric_direction(subject: Subject) -> None:
    """The ``mode`` points the right way: shrinking the errors of a prediction towards the target
    never makes the value worse, and makes it better somewhere."""
    metric = _metric(subject)
    generator = subject.generator()
    improved = False
    for scale in (0.01, 0.1, 1.0, 10.0):
        target = torch.randn(16, 2, generator=generator).to(subject.device)
        error = scale * torch.randn(16, 2, generator=generator).to(subject.device)
        values = [float(_score(metric, target + factor * error, target)) for factor in (1.0, 0.5, 0.25, 0.0)]
        for farther, closer in itertools.pairwise(values):
            if metric.better(farther, closer) and not _close(farther, closer):
                raise Problem(
                    f"scores {closer:.6g} on a prediction closer to the target than one scoring "
                    f"{farther:.6g} (errors of size about {scale:g} halved), which mode {metric.mode!r} "
                    "calls worse: is the mode right?"
                )
            improved = improved or (metric.better(closer, farther) and not _close(farther, closer))
    if not improved:
        raise Problem(
            "scores every prediction the same, however close it comes to the target (errors of size "
            "0.01 to 10, halved twice, then 0)"
        )


# -- callbacks -------------------------------------------------------------------------------------

#: The short training a callback is checked in: epochs, and how often the loop syncs (fixed, so that
#: an interrupted run and an uninterrupted one see the same sync points).
_CALLBACK_EPOCHS: Final = 40
_CALLBACK_LOG_EVERY: Final = 4
#: Where the save + resume check interrupts the run: a sync point (a multiple of log_every).
_CALLBACK_INTERRUPT: Final = 20


def _callback(subject: Subject) -> Callback:
    callback = subject.build()
    if not isinstance(callback, Callback):
        raise Problem(f"factory returned {describe(callback)}, expected a mlbasics.Callback")
    return callback


def state_problem(state: object) -> str | None:
    """Why ``state`` (what a callback's ``state_dict`` returned) cannot be saved in a run folder:
    it must be a dict with string keys holding what a checkpoint holds -- numbers, strings,
    booleans, None, lists, tuples, dicts and ``torch.Tensor`` values, at any depth (the tensors go
    into safetensors, the rest into JSON: the very encoding a checkpoint uses)."""
    from mlbasics.runs._state import encode

    if not isinstance(state, dict):
        return f"state_dict() returned {describe(state)}, expected a dict"
    for key in state:
        if not isinstance(key, str):
            return f"state_dict() has the key {key!r}, not a string"
    try:
        encode(state, "state_dict()", {})
    except TypeError as exc:
        return str(exc)
    return None


def callback_contract(subject: Subject) -> None:
    """A :class:`mlbasics.Callback`, with a ``sync_every`` of ``None`` or a positive integer, a
    boolean ``changes_optimizer``, and a ``state_dict`` that a run folder can hold."""
    callback = _callback(subject)
    every = callback.sync_every
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise Problem(f"has sync_every = {every!r}; it must be None or an integer >= 1")
    if not isinstance(callback.changes_optimizer, bool):
        raise Problem(f"has changes_optimizer = {callback.changes_optimizer!r}; it must be True or False")
    problem = state_problem(callback.state_dict())
    release(callback)
    if problem:
        raise Problem(f"before training, {problem}")


def _experiment(subject: Subject, device: torch.device, **settings: Any) -> Experiment:
    """A short training of a noisy linear table, with validation rows and metrics, so that a
    callback monitoring a loss or a metric of either part finds it."""
    from mlbasics.engine.experiment import Experiment

    return Experiment(
        dataset={"name": "synthetic-linear", "n": 40, "noise": 0.1},
        model="linear",
        optimizer={"name": "sgd", "lr": 0.05},
        epochs=_CALLBACK_EPOCHS,
        device=str(device),
        log_every=_CALLBACK_LOG_EVERY,
        validation=0.25,
        metrics=["mse", "rmse", "mae", "r2"],
        callbacks=[{"name": subject.spec.name, **subject.given()}],
        **settings,
    )


def _trained(subject: Subject, run: Callable[[], TrainResult], what: str) -> TrainResult:
    """``run()``'s result; a failure of the callback, or a refusal, is the check's problem."""
    try:
        return run()
    except CallbackError as exc:
        raise Problem(f"failed in {what}: {exc}") from exc
    except MlbasicsError as exc:
        raise Problem(f"cannot be used in {what}: {one_line(exc)}") from exc


def _prepared(subject: Subject, experiment: Experiment) -> Setup:
    from mlbasics.engine.setup import prepare

    try:
        return prepare(experiment, subject.registry)
    except MlbasicsError as exc:
        raise Problem(
            f"cannot be used in a short training of the built-in synthetic-linear data: {one_line(exc)} "
            "(the check needs the built-ins in its registry: Registry.isolated(my_plugin) has them)"
        ) from exc


def callback_trains(subject: Subject) -> None:
    """Runs through a short real training on the device (40 epochs of a linear model, validation
    rows, the metrics mse, rmse, mae and r2) without failing, and its ``state_dict`` afterwards is
    one a run folder can hold."""
    from mlbasics.training.runner import run

    with _own_random_state():
        setup = _prepared(subject, _experiment(subject, subject.device))
        (callback,) = setup.callbacks
        what = f"a short training on {subject.device}"
        result = _trained(subject, lambda: run(setup), what)
    if result.epochs < 1 or len(result.history) != result.epochs:
        raise Problem(f"left a result of {result.epochs} epochs with {len(result.history)} losses in {what}")
    problem = state_problem(callback.state_dict())
    if problem:
        raise Problem(f"after {what}, {problem}")


_RESUMING: Final = (
    "a callback keeps all it carries from sync point to sync point in state_dict() and takes it back "
    "in load_state_dict(), and leaves the weights as they are when training is interrupted "
    "(result.interrupted_by)"
)


@contextlib.contextmanager
def _own_random_state() -> Iterator[None]:
    """Training seeds torch's generators and resuming restores a run's Python and torch random
    states: put back the caller's afterwards, so that a check leaves the test process as it was."""
    python = random.getstate()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python)


class _InterruptAt(Callback):
    """Asks the loop to stop at the first sync point at or after ``epoch``, as Ctrl-C would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        if epoch >= self.epoch:
            setup.interrupt.request(signal.SIGINT)


def callback_resumes(subject: Subject) -> None:
    """A run saved (``save=``), interrupted half way and resumed (:func:`mlbasics.resume`) ends
    as the same run never interrupted: the same epochs, losses and parameters, to the bit, and
    stopped (or not) alike. On the CPU, where resuming is exact; the callback's state goes through
    its ``state_dict`` and ``load_state_dict``."""
    import warnings

    from mlbasics.training.resuming import ResumeWarning, resume
    from mlbasics.training.runner import run, train

    cpu = torch.device("cpu")
    experiment = _experiment(subject, cpu)
    with _own_random_state():
        whole = _trained(subject, lambda: run(_prepared(subject, experiment)), "a short training")
    with _own_random_state(), tempfile.TemporaryDirectory(prefix="mlbasics-conformance-") as folder:
        saved = Path(folder) / "run"
        first = _trained(
            subject,
            lambda: train(
                experiment,
                registry=subject.registry,
                save=saved,
                callbacks=[_InterruptAt(_CALLBACK_INTERRUPT)],
            ),
            "a saved training",
        )
        if first.interrupted_by is None:  # it stopped by itself before the interruption
            resumed = first
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error", ResumeWarning)  # nothing may differ on resuming
                resumed = _trained(
                    subject,
                    lambda: resume(saved, registry=subject.registry),
                    f"a run resumed from epoch {first.epochs}",
                )
    how = (
        f"interrupted after epoch {first.epochs} and resumed" if first.interrupted_by is not None else "saved"
    )
    if resumed.epochs != whole.epochs or bool(resumed.stopped) != bool(whole.stopped):
        raise Problem(
            f"{how}, a run ends after epoch {resumed.epochs} ({resumed.stopped or 'not stopped'}), but "
            f"never interrupted after epoch {whole.epochs} ({whole.stopped or 'not stopped'}); {_RESUMING}"
        )
    if resumed.history != whole.history:
        epoch = next(i for i, (a, b) in enumerate(zip(resumed.history, whole.history, strict=True)) if a != b)
        raise Problem(
            f"{how}, a run's loss departs at epoch {epoch + 1} from the run never interrupted "
            f"({resumed.history[epoch]!r} against {whole.history[epoch]!r}); {_RESUMING}"
        )
    differing = [
        name for name, value in whole.parameters.items() if not torch.equal(resumed.parameters[name], value)
    ]
    if differing:
        raise Problem(
            f"{how}, a run ends with other parameters ({', '.join(differing)}) than the run never "
            f"interrupted, after the same losses; {_RESUMING}"
        )


#: The checks of each kind, by name, in the order they run.
KIND_CHECKS: Final[dict[str, dict[str, CheckFunction]]] = {
    "dataset": {"contract": dataset_contract, "reproducible": dataset_reproducible},
    "model": {
        "shapes": model_shapes,
        "differentiable": model_differentiable,
        "reproducible": model_reproducible,
    },
    "activation": {"elementwise": activation_elementwise, "gradcheck": activation_gradcheck},
    "loss": {"contract": loss_contract},
    "optimizer": {"minimises": optimizer_minimises},
    "metric": {
        "contract": metric_contract,
        "row-order": metric_row_order,
        "batched": metric_batched,
        "direction": metric_direction,
    },
    "callback": {"contract": callback_contract, "trains": callback_trains, "resumes": callback_resumes},
}

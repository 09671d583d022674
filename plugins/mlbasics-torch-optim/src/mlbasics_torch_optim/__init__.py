"""mlbasics-torch-optim: torch.optim optimizers and torch.nn regression losses as mlbasics components.

This module holds only the hooks and the specs (no torch import), so ``mlbasics list`` stays fast;
each factory is a ``"module:function"`` string that mlbasics imports when the component is built.
Adam, AdamW and RMSprop also declare a stacked form (``stacked.py``), so sweeps train them vmapped.
"""

from __future__ import annotations

from mlbasics import ComponentSpec, Param, hookimpl

_HERE = __name__


def _lr(default: float) -> Param:
    return Param(name="lr", type=float, default=default, gt=0, help="learning rate")


_WEIGHT_DECAY = Param(name="weight_decay", type=float, default=0.0, ge=0, help="L2 penalty")
_EPS = Param(name="eps", type=float, default=1e-8, gt=0, help="added to the denominator for stability")


def _adam_params(weight_decay: Param) -> tuple[Param, ...]:
    return (
        _lr(0.001),
        Param(name="beta1", type=float, default=0.9, ge=0, lt=1, help="decay of the gradient average"),
        Param(
            name="beta2", type=float, default=0.999, ge=0, lt=1, help="decay of the squared-gradient average"
        ),
        _EPS,
        weight_decay,
        Param(name="amsgrad", type=bool, default=False, help="use the AMSGrad variant"),
    )


@hookimpl
def mlbasics_optimizers() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            kind="optimizer",
            name="adam",
            factory=f"{_HERE}.optimizers:adam",
            stacked=f"{_HERE}.stacked:adam",  # sweeps vmap it
            summary="Adam: gradient descent with per-parameter step sizes (torch.optim.Adam)",
            params=_adam_params(_WEIGHT_DECAY),
        ),
        ComponentSpec(
            kind="optimizer",
            name="adamw",
            factory=f"{_HERE}.optimizers:adamw",
            stacked=f"{_HERE}.stacked:adamw",  # sweeps vmap it
            summary="Adam with decoupled weight decay (torch.optim.AdamW)",
            params=_adam_params(
                Param(name="weight_decay", type=float, default=0.01, ge=0, help="decoupled weight decay")
            ),
        ),
        ComponentSpec(
            kind="optimizer",
            name="rmsprop",
            factory=f"{_HERE}.optimizers:rmsprop",
            stacked=f"{_HERE}.stacked:rmsprop",  # sweeps vmap it
            summary="RMSprop: divides the step by a running root mean square of the gradient",
            params=(
                _lr(0.01),
                Param(name="alpha", type=float, default=0.99, ge=0, lt=1, help="smoothing constant"),
                _EPS,
                _WEIGHT_DECAY,
                Param(name="momentum", type=float, default=0.0, ge=0, lt=1, help="momentum factor"),
                Param(name="centered", type=bool, default=False, help="normalise by the gradient's variance"),
            ),
        ),
        ComponentSpec(
            kind="optimizer",
            name="lbfgs",
            factory=f"{_HERE}.optimizers:lbfgs",
            summary="L-BFGS: a quasi-Newton method; each epoch is one step of up to max_iter iterations",
            params=(
                _lr(1.0),
                Param(name="max_iter", type=int, default=20, ge=1, help="iterations per step"),
                Param(
                    name="history_size",
                    type=int,
                    default=100,
                    ge=1,
                    help="updates kept for the Hessian estimate",
                ),
                Param(
                    name="line_search",
                    type=str,
                    default="strong_wolfe",
                    choices=("strong_wolfe", "none"),
                    help="line search along each direction",
                ),
                Param(
                    name="tolerance_grad",
                    type=float,
                    default=1e-7,
                    ge=0,
                    help="stop when the gradient is this small",
                ),
                Param(
                    name="tolerance_change",
                    type=float,
                    default=1e-9,
                    ge=0,
                    help="stop when the loss changes less",
                ),
            ),
            # step() needs a closure that re-evaluates the loss: mlbasics' training loop gives one.
            tags={"closure"},
        ),
    ]


@hookimpl
def mlbasics_losses() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            kind="loss",
            name="l1",
            factory=f"{_HERE}.losses:l1",
            summary="Mean absolute error (1/n)·Σ|H(x) - y|, as torch.nn.L1Loss: robust to outliers",
        ),
        ComponentSpec(
            kind="loss",
            name="huber",
            factory=f"{_HERE}.losses:huber",
            summary="Squared error for small residuals, linear beyond delta (torch.nn.HuberLoss)",
            params=(Param(name="delta", type=float, default=1.0, gt=0, help="where the loss turns linear"),),
        ),
        ComponentSpec(
            kind="loss",
            name="smooth-l1",
            factory=f"{_HERE}.losses:smooth_l1",
            summary="Huber loss divided by beta: L1 beyond beta, quadratic inside (torch.nn.SmoothL1Loss)",
            params=(
                Param(
                    name="beta", type=float, default=1.0, ge=0, help="where the loss turns linear; 0 is L1"
                ),
            ),
        ),
    ]

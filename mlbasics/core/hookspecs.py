"""The hooks a plugin implements: one per component kind (five build a model and its training;
metrics and callbacks watch and steer training).

A plugin is any module or object with functions marked ``@mlbasics.hookimpl`` and named after these
hooks. Each hook takes no arguments and returns an iterable of :class:`mlbasics.ComponentSpec` of
its kind. mlbasics calls every plugin's implementation separately, so a hook that raises or returns
something invalid puts only its own plugin out of action.

Example::

    from mlbasics import ComponentSpec, Param, hookimpl

    @hookimpl
    def mlbasics_activations():
        return [
            ComponentSpec(
                kind="activation",
                name="softsign",
                factory="my_plugin.layers:softsign",
                summary="x / (1 + |x|)",
            )
        ]
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from mlbasics.core.specs import ComponentSpec

PROJECT_NAME = "mlbasics"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def mlbasics_datasets() -> Iterable[ComponentSpec]:  # type: ignore[empty-body]
    """Return the datasets this plugin provides (specs of kind ``"dataset"``).

    The factory is called with the validated params as keyword arguments and returns a
    :class:`mlbasics.Dataset`: float32 ``features`` shaped (n, d) and ``targets`` shaped (n, k),
    one column per target (k = 1 for most tables).
    """


@hookspec
def mlbasics_models() -> Iterable[ComponentSpec]:  # type: ignore[empty-body]
    """Return the models this plugin provides (specs of kind ``"model"``).

    The factory is called with ``in_features`` and ``out_features`` (taken from the dataset) and the
    validated params as keyword arguments, and returns a ``torch.nn.Module`` mapping (n, in_features)
    to (n, out_features). mlbasics seeds the global torch RNG before calling it, so initialisation
    drawn from it is reproducible.
    """


@hookspec
def mlbasics_activations() -> Iterable[ComponentSpec]:  # type: ignore[empty-body]
    """Return the activations this plugin provides (specs of kind ``"activation"``).

    The factory is called with the validated params and returns an elementwise, shape-preserving
    ``torch.nn.Module``.
    """


@hookspec
def mlbasics_losses() -> Iterable[ComponentSpec]:  # type: ignore[empty-body]
    """Return the losses this plugin provides (specs of kind ``"loss"``).

    The factory is called with the validated params and returns a callable (usually a
    ``torch.nn.Module``) mapping ``(prediction, target)``, both (n, k), to a non-negative scalar tensor.
    Tag a loss ``"least-squares"`` if its minimiser is the least-squares solution.
    """


@hookspec
def mlbasics_optimizers() -> Iterable[ComponentSpec]:  # type: ignore[empty-body]
    """Return the optimizers this plugin provides (specs of kind ``"optimizer"``).

    The factory is called with the model's parameters (a list of tensors) as its first argument and
    the validated params as keyword arguments. It returns a ``torch.optim.Optimizer``, or a
    :class:`mlbasics.ClosedFormSolver` that fits the model in one step. Tag the spec ``"closure"`` if
    ``step`` needs a closure that re-evaluates the loss (as ``torch.optim.LBFGS`` does).
    """


@hookspec
def mlbasics_metrics() -> Iterable[ComponentSpec]:  # type: ignore[empty-body]
    """Return the metrics this plugin provides (specs of kind ``"metric"``).

    The factory is called with the validated params and returns a :class:`mlbasics.Metric`: a
    function of ``(prediction, target)``, both shaped ``(..., n, k)``, that reduces the rows and
    outputs (the last two dimensions) and keeps any leading ones (a vmapped ensemble's members),
    with its ``mode`` (``"min"`` for an error, ``"max"`` for a score) and its ``best`` value (that
    of a perfect prediction). It is computed on the device, in the data's units, at sync points.
    """


@hookspec
def mlbasics_callbacks() -> Iterable[ComponentSpec]:  # type: ignore[empty-body]
    """Return the training callbacks this plugin provides (specs of kind ``"callback"``).

    The factory is called with the validated params and returns a :class:`mlbasics.Callback`,
    which the loop calls at the start, at every sync point and at the end of training (see
    :mod:`mlbasics.core.callbacks`). A callback that keeps state across a run (a best epoch, a
    schedule's step) returns it from ``state_dict`` and takes it back in ``load_state_dict``:
    mlbasics saves it in the run folder, so a resumed run behaves as one never interrupted.
    """


#: Hook name for each component kind, in the order listings show them.
HOOK_FOR_KIND: dict[str, str] = {
    "dataset": "mlbasics_datasets",
    "model": "mlbasics_models",
    "activation": "mlbasics_activations",
    "loss": "mlbasics_losses",
    "optimizer": "mlbasics_optimizers",
    "metric": "mlbasics_metrics",
    "callback": "mlbasics_callbacks",
}

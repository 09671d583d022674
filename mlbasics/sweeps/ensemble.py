"""Many copies of one small model trained at once, as one batched computation (``torch.func.vmap``).

A model as small as the lecture's MLP leaves a CPU or GPU almost idle: each step is a few dozen
tiny operations, and the time goes into dispatching them. Stacking the parameters of M models
along a new first dimension (``stack_module_state``) and mapping the per-model loss and gradient
over it (``vmap(grad_and_value(...))``) dispatches each operation once for all M models.

The update is the optimizer's *stacked form*, which its spec declares (``ComponentSpec.stacked``):
a function ``update(params, grads, state, hyper) -> (params, state)`` over parameters stacked along
the members, written to compute what the optimizer computes for each member alone
(:class:`StackedUpdate`). ``hyper`` holds the optimizer's params: a number all members share is a
Python number, so the update can use the very operation the optimizer uses; values that differ
are a tensor with one entry per member (:func:`stacked_hyper`, :func:`per_member`). The batched
products still round differently from one model's in the last bit, so a member's history equals
its single run within float32 tolerance (bitwise only by luck); docs/performance.md says how far
that goes.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from mlbasics.devices import synchronize
from mlbasics.engine.interrupts import Interrupt
from mlbasics.engine.loop import MAX_SYNC_INTERVAL, SyncSchedule
from mlbasics.errors import one_line


class StackedUpdate(Protocol):
    """An optimizer's step over parameters stacked along a first, member dimension.

    ``params`` and ``grads`` map each parameter's name to a tensor shaped (members, ...); ``state``
    is what the previous call returned (an empty dict before the first step); ``hyper`` holds the
    optimizer's params (see :func:`stacked_hyper`). Returns the new parameters (updating them in
    place and returning them is fine) and the new state. Called under ``torch.no_grad()``.
    """

    def __call__(
        self,
        params: dict[str, torch.Tensor],
        grads: Mapping[str, torch.Tensor],
        state: dict[str, Any],
        hyper: Mapping[str, Any],
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]: ...


def stacked_hyper(
    members: Sequence[Mapping[str, Any]], device: torch.device, dtype: torch.dtype
) -> dict[str, Any] | str:
    """The ``hyper`` of a stacked update from each member's optimizer params, or why there is none.

    A param every member gives the same value keeps that value (a Python number, bool, string or
    list); a number that differs between members becomes a tensor of the members' values, shape
    (members,), in ``dtype`` on ``device``. Anything else that differs cannot be stacked.
    """
    hyper: dict[str, Any] = {}
    for key in members[0]:
        values = [member[key] for member in members]
        if all(value == values[0] and type(value) is type(values[0]) for value in values):
            hyper[key] = values[0]
        elif all(isinstance(value, int | float) and not isinstance(value, bool) for value in values):
            hyper[key] = torch.tensor([float(value) for value in values], device=device, dtype=dtype)
        else:
            return f"members differ in the optimizer's {key}, which its stacked update shares between them"
    return hyper


def per_member(value: Any, like: torch.Tensor) -> Any:
    """A hyperparameter ready to combine with ``like`` (members, ...): a shared Python number as it
    is, per-member values (members,) shaped (members, 1, ..., 1) to broadcast over ``like``."""
    if isinstance(value, torch.Tensor):
        return value.view(-1, *([1] * (like.ndim - 1)))
    return value


def is_shared(value: Any) -> bool:
    """Whether a hyperparameter is the same for every member (a Python value, not a tensor)."""
    return not isinstance(value, torch.Tensor)


def any_nonzero(value: Any) -> bool:
    """Whether a numeric hyperparameter is nonzero for any member."""
    return bool((value != 0).any()) if isinstance(value, torch.Tensor) else value != 0


def model_problem(models: Sequence[nn.Module], name: str) -> str | None:
    """Why these member models cannot be stacked, or ``None``."""
    first = models[0]
    if any(True for _ in first.buffers()):
        return f"model {name!r} has buffers (such as running statistics), which the ensemble does not carry"
    shapes = [(n, p.shape, p.dtype) for n, p in first.named_parameters()]
    if not shapes:
        return f"model {name!r} has no parameters to train"
    if not all(p.requires_grad for p in first.parameters()):
        return f"model {name!r} has frozen parameters (requires_grad=False), which the ensemble would train"
    for model in models[1:]:
        if (
            type(model) is not type(first)
            or [(n, p.shape, p.dtype) for n, p in model.named_parameters()] != shapes
        ):
            return "members' models differ in their layers or shapes"
    return None


#: What a sweep computes from the stacked parameters at a sync point or at the end: values by
#: name, each shaped (members,), on the device (the validation and test losses, the metrics).
ValuesOf = Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]
#: ``forward(params, x)``: every member's predictions (members, n, k) for the same rows ``x``.
StackedForward = Callable[[Mapping[str, torch.Tensor], torch.Tensor], torch.Tensor]


def stacked_forward(model: nn.Module) -> StackedForward:
    """``forward(params, x)``: the predictions of every member for the same rows ``x`` (n, d), shaped
    (members, n, k), from parameters stacked along the members (``model`` serves as a template
    only: its values are not used)."""
    template = copy.deepcopy(model).to("meta")

    def member(params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(template, dict(params), (x,))  # type: ignore[no-any-return]

    forward: StackedForward = vmap(member, in_dims=(0, None))
    return forward


@attrs.frozen(kw_only=True, eq=False)
class EnsembleRun:
    """What training a stack of models produced."""

    #: Losses shaped (members, epochs), on the CPU; entry [m, e] is member m's loss at epoch e.
    histories: torch.Tensor
    #: Each member's final parameters, on the CPU.
    parameters: list[dict[str, torch.Tensor]]
    seconds: float
    #: The epochs of the sync points, in order.
    sync_epochs: list[int] = attrs.field(factory=list)
    #: What ``sync_values`` gave at each sync point, by name, shaped (sync points, members), on the CPU.
    values: dict[str, torch.Tensor] = attrs.field(factory=dict)
    #: What ``end_values`` gave after the last step, by name, shaped (members,), on the CPU.
    end_values: dict[str, torch.Tensor] = attrs.field(factory=dict)
    #: The signal that ended training before its epochs, if one did.
    interrupted_by: int | None = None


class NotVmappable(Exception):
    """The first step failed: the model or loss under vmap (``part == "model"``), or the optimizer's
    stacked update (``part == "update"``); the message says how."""

    def __init__(self, message: str, part: str) -> None:
        super().__init__(message)
        self.part = part


def train_stacked(
    models: Sequence[nn.Module],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    features: torch.Tensor,
    targets: torch.Tensor,
    update: StackedUpdate,
    hyper: Mapping[str, Any],
    *,
    epochs: int,
    schedule: SyncSchedule,
    sync_values: ValuesOf | None = None,
    end_values: ValuesOf | None = None,
    on_sync: Callable[[int, torch.Tensor, dict[str, torch.Tensor]], None] | None = None,
    interrupt: Interrupt | None = None,
) -> EnsembleRun:
    """Train ``models`` (same layers, different values) on the same full batch for ``epochs``,
    stepping with ``update`` and its ``hyper`` (each member's optimizer settings, see
    :func:`stacked_hyper`).

    Sync points fall where ``schedule`` places them, as in the training loop. At each, the losses
    since the last one and what ``sync_values`` computes from the parameters (validation losses,
    metrics) are copied off the device in one transfer; ``on_sync(epochs done, losses, values)``
    then gets those losses, shaped (epochs, members), and values, each (members,), on the CPU. ``end_values`` is computed once after the
    last step (test losses and metrics). Raises :class:`NotVmappable` if the first step fails,
    under vmap or in ``update`` (the models are untouched: they were copied into the stack).
    ``interrupt`` (Ctrl-C, SIGTERM: :mod:`mlbasics.engine.interrupts`) ends training after the
    step during which it was set, at a sync point made there: the run then holds fewer epochs."""
    stacked, _ = stack_module_state(list(models))  # new tensors: the models themselves are untouched
    params = {name: value.detach() for name, value in stacked.items()}
    template = copy.deepcopy(models[0]).to("meta")  # structure only, for functional_call

    def member_loss(member: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss(functional_call(template, member, (x,)), y)

    gradient_and_loss = vmap(grad_and_value(member_loss), in_dims=(0, None, None))
    first_param = next(iter(params.values()))
    state: dict[str, Any] = {}
    synchronize(first_param.device)
    start = time.perf_counter()
    try:
        pending: tuple[dict[str, torch.Tensor], torch.Tensor] | None = gradient_and_loss(
            params, features, targets
        )
    except Exception as exc:
        raise NotVmappable(one_line(exc), "model") from exc
    chunks: list[torch.Tensor] = []
    sync_epochs: list[int] = []
    rows: dict[str, list[torch.Tensor]] = {}
    done = 0
    while done < epochs:
        n = schedule.next(done, epochs)
        began = time.perf_counter()
        losses: list[torch.Tensor] = []
        for step in range(n):
            grads, member_losses = pending or gradient_and_loss(params, features, targets)
            with torch.no_grad():
                if pending is None:
                    params, state = update(params, grads, state, hyper)
                else:  # the first step: a plugin's update that fails here leaves the sweep a fallback
                    pending = None
                    try:
                        params, state = update(params, grads, state, hyper)
                    except Exception as exc:
                        raise NotVmappable(one_line(exc), "update") from exc
            losses.append(member_losses.detach())
            if interrupt is not None and interrupt.signal:
                break
            if len(losses) == MAX_SYNC_INTERVAL and step < n - 1:  # bounded losses in flight
                chunks.append(torch.stack(losses).cpu())
                losses = []
        values = _computed(sync_values, params)
        host = _copied_together(torch.stack(losses), values)  # the one host sync per interval
        synced = dict(zip(values, host[len(losses) :], strict=True))
        for name, row in synced.items():
            rows.setdefault(name, []).append(row)
        chunk = host[: len(losses)]
        chunks.append(chunk)
        taken = sum(len(part) for part in chunks) - done  # n, unless interrupted
        done += taken
        sync_epochs.append(done)
        schedule.record(taken, time.perf_counter() - began)
        if on_sync is not None:
            on_sync(done, chunk, synced)
        if interrupt is not None and interrupt.signal:
            break
    synchronize(first_param.device)
    seconds = time.perf_counter() - start
    at_end = _computed(end_values, params)
    final = dict(zip(at_end, _copied_together(None, at_end), strict=True))
    members = first_param.shape[0]
    parameters = [{name: value[m].cpu().clone() for name, value in params.items()} for m in range(members)]
    return EnsembleRun(
        histories=torch.cat(chunks).T.contiguous(),
        interrupted_by=interrupt.signal if interrupt is not None and interrupt.signal else None,
        parameters=parameters,
        seconds=seconds,
        sync_epochs=sync_epochs,
        values={name: torch.stack(row) for name, row in rows.items()},
        end_values=final,
    )


def _computed(values_of: ValuesOf | None, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if values_of is None:
        return {}
    with torch.no_grad():
        return values_of(params)


def _copied_together(losses: torch.Tensor | None, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``losses`` (epochs, members) and ``values`` (each (members,)) as rows of one tensor on the
    host, in one transfer; the losses' dtype (the values are cast to it, as the training loop does)."""
    if not values:
        return torch.empty(0) if losses is None else losses.cpu()
    rows = [] if losses is None else [losses]
    dtype = losses.dtype if losses is not None else next(iter(values.values())).dtype
    rows.append(torch.stack(list(values.values())).to(dtype))
    return torch.cat(rows).cpu()

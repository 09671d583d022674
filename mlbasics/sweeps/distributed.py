"""A sweep spread over the ranks of a torchrun launch.

Every rank lists the whole grid (it is cheap, and the same everywhere) and takes its share: a
contiguous block of members (:func:`share_of`). :func:`mlbasics.sweep` builds and trains those as
a sweep of their own, a vmapped ensemble on the rank's own device where the members allow it,
exactly as it trains a grid in one process. Then (:func:`gathered`) every rank sends what its members learned
(histories, parameters, held-out losses, metrics) to every other, as tensors: one float64 tensor of numbers
and one of UTF-8 JSON bytes saying how to cut it into members (names, shapes, dtypes). Each rank then
holds the result a one-process sweep would have given, members in grid order; rank 0 shows it.

The ranks agree twice (:func:`mlbasics.distributed.together`): once all members are built (a
mistake in one rank's members stops all before anyone trains) and once all are trained.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Final

import torch

from mlbasics import distributed
from mlbasics.engine.experiment import Experiment
from mlbasics.errors import ValidationError
from mlbasics.sweeps.results import SEQUENTIAL, VMAP, SweepMember, SweepResult

#: The dtypes a member's numbers may have; they travel as float64, which holds each exactly.
_DTYPES: Final = {
    str(dtype): dtype for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


def share_of(
    members: Sequence[tuple[dict[str, Any], Experiment]], launch: distributed.Launch
) -> Sequence[tuple[dict[str, Any], Experiment]]:
    """This rank's share of the grid's ``members``: a contiguous block, the same on every rank."""
    if len(members) < launch.world_size:
        raise ValidationError(
            [
                f"sweep: {len(members)} member{'s' if len(members) != 1 else ''} cannot be shared by "
                f"{launch.world_size} ranks; start at most {len(members)} (torchrun --nproc-per-node)"
            ]
        )
    mine = distributed.share(len(members), launch.rank, launch.world_size)
    return members[mine.start : mine.stop]


def gathered(
    experiment: Experiment,
    axes: dict[str, list[Any]],
    members: Sequence[tuple[dict[str, Any], Experiment]],
    own: SweepResult,
) -> SweepResult:
    """Every rank's members, in grid order, in one result (on every rank)."""
    layout, numbers = _encoded(own)
    layouts = [json.loads(data.decode()) for data in distributed.all_gather_bytes(layout)]
    values = distributed.all_gather_values(numbers)
    result_members: list[SweepMember] = []
    for rank_layout, rank_values in zip(layouts, values, strict=True):
        offset = 0
        for entry in rank_layout["members"]:
            index = len(result_members)
            member_values, member_experiment = members[index]
            length, history_dtype = entry["history"]
            history, offset = _take(rank_values, offset, [length], history_dtype)
            parameters, offset = _unpacked(rank_values, offset, entry["parameters"])
            metric_history, offset = _unpacked(rank_values, offset, entry["metric_history"])
            result_members.append(
                SweepMember(
                    index=index,
                    values=member_values,
                    experiment=member_experiment,
                    history=history,
                    parameters=parameters,
                    validation_loss=entry["validation_loss"],
                    test_loss=entry["test_loss"],
                    metrics=entry["metrics"],
                    sync_epochs=torch.tensor(entry["sync_epochs"], dtype=torch.int64),
                    metric_history=metric_history,
                    stopped=entry["stopped"],
                    restored_epoch=entry["restored"][0],
                    restored_loss=entry["restored"][1],
                )
            )
    assert len(result_members) == len(members)
    modes = {rank_layout["mode"] for rank_layout in layouts}
    reasons = [rank_layout["reason"] for rank_layout in layouts if rank_layout["reason"] is not None]
    return SweepResult(
        experiment=experiment,
        axes=tuple(axes),
        members=tuple(result_members),
        mode=VMAP if modes == {VMAP} else SEQUENTIAL,
        reason=reasons[0] if reasons else None,
        device=own.device if distributed.is_main() else layouts[0]["device"],
        seconds=max(rank_layout["seconds"] for rank_layout in layouts),  # the ranks train at once
        setup_seconds=max(rank_layout["setup_seconds"] for rank_layout in layouts),
        metric_modes=own.metric_modes,
    )


def _encoded(result: SweepResult) -> tuple[bytes, torch.Tensor]:
    """A rank's members as JSON (how to read the numbers) and one float64 tensor (the numbers)."""
    parts: list[torch.Tensor] = []
    entries = []
    for member in result.members:
        parts.append(member.history.double().flatten())
        shapes = _packed(member.parameters, parts)
        metric_shapes = _packed(member.metric_history, parts)
        entries.append(
            {
                "history": [len(member.history), str(member.history.dtype)],
                "parameters": shapes,
                "validation_loss": member.validation_loss,
                "test_loss": member.test_loss,
                "metrics": member.metrics,
                "sync_epochs": member.sync_epochs.tolist(),
                "metric_history": metric_shapes,
                "stopped": member.stopped,
                "restored": [member.restored_epoch, member.restored_loss],
            }
        )
    layout = {
        "mode": result.mode,
        "reason": result.reason,
        "device": result.device,
        "seconds": result.seconds,
        "setup_seconds": result.setup_seconds,
        "members": entries,
    }
    numbers = torch.cat(parts) if parts else torch.empty(0, dtype=torch.float64)
    return json.dumps(layout).encode(), numbers  # NaN and inf travel as JSON's NaN/Infinity


def _packed(tensors: dict[str, torch.Tensor], parts: list[torch.Tensor]) -> list[list[Any]]:
    """Append each of ``tensors`` to ``parts`` as float64 numbers; return how to read them back:
    ``[name, shape, dtype]`` each, in order (:func:`_unpacked`)."""
    layout = []
    for name, value in tensors.items():
        parts.append(value.detach().cpu().double().flatten())
        layout.append([name, list(value.shape), str(value.dtype)])
    return layout


def _unpacked(
    values: torch.Tensor, offset: int, layout: list[list[Any]]
) -> tuple[dict[str, torch.Tensor], int]:
    """The tensors :func:`_packed` laid out, read from ``values`` at ``offset``; and the offset after them."""
    tensors = {}
    for name, shape, dtype in layout:
        tensors[name], offset = _take(values, offset, shape, dtype)
    return tensors, offset


def _take(values: torch.Tensor, offset: int, shape: list[int], dtype: str) -> tuple[torch.Tensor, int]:
    count = math.prod(shape)
    tensor = values[offset : offset + count].to(_DTYPES[dtype]).reshape(shape).clone()
    return tensor, offset + count

"""A sweep spread over the ranks of a torchrun launch.

Every rank lists the whole grid (it is cheap, and the same everywhere) and takes its share: a
contiguous block of members (:func:`mlbasics.distributed.share`). It builds and trains those as a
sweep of their own, a vmapped ensemble on its own device where the members allow it, exactly as
:func:`mlbasics.sweep` trains a grid in one process. Then every rank sends what its members learned
(histories, parameters, held-out losses) to every other, as tensors: one float64 tensor of numbers
and one of UTF-8 JSON bytes saying how to cut it into members (names, shapes, dtypes). Each rank then
holds the result a one-process sweep would have given, members in grid order; rank 0 shows it.

The ranks agree twice (:func:`mlbasics.distributed.together`): once all members are built (a
mistake in one rank's members stops all before anyone trains) and once all are trained.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any, Final

import torch

from mlbasics import distributed
from mlbasics.errors import ValidationError
from mlbasics.experiment import Experiment
from mlbasics.registry import Registry
from mlbasics.sweeps import (
    SEQUENTIAL,
    VMAP,
    SweepMember,
    SweepResult,
    _prepare_all,
    _ProgressBar,
    train_setups,
)

#: The dtypes a member's numbers may have; they travel as float64, which holds each exactly.
_DTYPES: Final = {
    str(dtype): dtype for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


def sweep_on_ranks(
    experiment: Experiment,
    axes: dict[str, list[Any]],
    members: Sequence[tuple[dict[str, Any], Experiment]],
    registry: Registry,
    *,
    vmap: bool,
    progress: bool,
) -> SweepResult:
    """Train this rank's share of ``members`` and return the whole sweep's result (on every rank)."""
    launch = distributed.launch()
    assert launch is not None
    if len(members) < launch.world_size:
        raise ValidationError(
            [
                f"sweep: {len(members)} member{'s' if len(members) != 1 else ''} cannot be shared by "
                f"{launch.world_size} ranks; start at most {len(members)} (torchrun --nproc-per-node)"
            ]
        )
    mine = distributed.share(len(members), launch.rank, launch.world_size)
    own = members[mine.start : mine.stop]
    with distributed.together():
        start = time.perf_counter()
        setups = _prepare_all(own, registry)
        setup_seconds = time.perf_counter() - start
    bar = None
    if progress and launch.is_main:  # one bar, for the whole grid; rank 0's share stands for all
        scale = len(members) / len(own)
        bar = _ProgressBar(round(sum(s.end_epoch for s in setups) * scale), scale=scale)
    try:
        with distributed.together():
            result = train_setups(experiment, axes, own, setups, setup_seconds, vmap=vmap, bar=bar)
    finally:
        if bar is not None:
            bar.stop()
    return _gathered(experiment, axes, members, result)


def _gathered(
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
            parameters = {}
            for name, shape, dtype in entry["parameters"]:
                parameters[name], offset = _take(rank_values, offset, shape, dtype)
            result_members.append(
                SweepMember(
                    index=index,
                    values=member_values,
                    experiment=member_experiment,
                    history=history,
                    parameters=parameters,
                    validation_loss=entry["validation_loss"],
                    test_loss=entry["test_loss"],
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
    )


def _encoded(result: SweepResult) -> tuple[bytes, torch.Tensor]:
    """A rank's members as JSON (how to read the numbers) and one float64 tensor (the numbers)."""
    parts: list[torch.Tensor] = []
    entries = []
    for member in result.members:
        parts.append(member.history.double().flatten())
        shapes = []
        for name, value in member.parameters.items():
            parts.append(value.detach().cpu().double().flatten())
            shapes.append([name, list(value.shape), str(value.dtype)])
        entries.append(
            {
                "history": [len(member.history), str(member.history.dtype)],
                "parameters": shapes,
                "validation_loss": member.validation_loss,
                "test_loss": member.test_loss,
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


def _take(values: torch.Tensor, offset: int, shape: list[int], dtype: str) -> tuple[torch.Tensor, int]:
    count = math.prod(shape)
    tensor = values[offset : offset + count].to(_DTYPES[dtype]).reshape(shape).clone()
    return tensor, offset + count

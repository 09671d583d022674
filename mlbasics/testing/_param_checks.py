"""The checks every kind shares: a component's declared params build when they are allowed and are
rejected, naming the param, when they are not (the values come from ``_param_cases``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mlbasics.core.callbacks import Callback
from mlbasics.data.dataset import Dataset
from mlbasics.engine.metrics import Metric
from mlbasics.engine.solvers import ClosedFormSolver
from mlbasics.errors import MlbasicsError
from mlbasics.testing._contracts import Problem, Subject, describe, instantiate, release
from mlbasics.testing._param_cases import OMITTED, accepted_cases, rejected_cases


def _build_kind(subject: Subject, values: dict[str, Any]) -> str | None:
    """Build with validated ``values`` as training would; say what is wrong with the object returned."""
    spec, registry = subject.spec, subject.registry
    if spec.kind == "optimizer":
        built = instantiate(registry, spec, values, [nn.Parameter(torch.zeros(2, 1))])
        expected: tuple[type, ...] = (torch.optim.Optimizer, ClosedFormSolver)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            built = instantiate(registry, spec, values)
        expected = {
            "dataset": (Dataset,),
            "model": (nn.Module,),
            "activation": (nn.Module,),
            "metric": (Metric,),
            "callback": (Callback,),
        }.get(spec.kind, ())
    release(built)
    if expected and not isinstance(built, expected):
        return f"returned {describe(built)}, expected {' or '.join(t.__name__ for t in expected)}"
    if spec.kind == "loss" and not callable(built):
        return f"returned {describe(built)}, which is not callable"
    return None


def params_accepted(subject: Subject) -> None:
    """Every value a param's declaration allows builds (or fails with a clear mlbasics error);
    probed one param at a time at the edges of its declared range. The defaults must build."""
    base = subject.values()
    wrong = _build_kind(subject, base)
    if wrong:
        raise Problem(f"built from its defaults, the factory {wrong}")
    problems = []
    for case in accepted_cases(subject.spec, base, subject.registry):
        param = subject.spec.param(case.param)
        assert param is not None
        values = subject.values(**{case.param: case.value})
        try:
            wrong = _build_kind(subject, values)
        except MlbasicsError:
            continue  # refused with a message a user can act on: fine
        except Exception as exc:
            message = str(exc).strip().splitlines()
            problems.append(
                f"{case} is allowed by its declaration ({param.constraint() or 'no constraint'}), but the "
                f"factory raised {type(exc).__name__}{': ' + message[0] if message else ''}"
            )
            continue
        if wrong:
            problems.append(f"built from {case}, the factory {wrong}")
    if problems:
        raise Problem(
            "; ".join(problems) + "; declare the constraint (ge, gt, le, lt, min_length, choices) so "
            "that the registry rejects such values with a clear message"
        )


def params_rejected(subject: Subject) -> None:
    """Every value a param's declaration forbids is rejected by the registry, naming the param."""
    base = subject.values()
    problems = []
    for case in rejected_cases(subject.spec, base):
        params = subject.given(**{case.param: case.value})
        if case.value is OMITTED:
            del params[case.param]
        found = subject.registry.check(subject.spec.kind, subject.spec.name, params)
        if not found:
            problems.append(f"{case} ({case.why}) was accepted")
        elif not any(f"'{case.param}'" in line for line in found):
            problems.append(f"{case} ({case.why}) was rejected without naming the param: {found[0]}")
    if problems:
        raise Problem("; ".join(problems))

"""Training state as tensors plus JSON primitives, so reading it back never needs pickle.

An optimizer's ``state_dict()`` is a tree of dicts, lists and tuples whose leaves are tensors,
numbers, strings, booleans and ``None``. :func:`encode` turns such a tree into a JSON-ready value in
which every tensor is replaced by ``{"$tensor": key}`` and stored in a flat ``{key: tensor}`` dict
(written as safetensors); tuples and dicts are tagged so that they come back as they were (dict keys
may be ints, as in ``state_dict()["state"]``). :func:`decode` reverses it and refuses anything else.
Anything that is not one of these types is an error when saving, never silently pickled.

The random number generators a run may draw from (torch on the CPU, every initialised CUDA device,
and Python's ``random``) are captured the same way.
"""

from __future__ import annotations

import random
from typing import Any, Final

import torch

TENSOR: Final = "$tensor"
TUPLE: Final = "$tuple"
DICT: Final = "$dict"
_PRIMITIVES: Final = (bool, int, float, str, type(None))


def encode(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON primitives; its tensors go into ``tensors`` under keys starting with ``key``."""
    if isinstance(value, torch.Tensor):
        # A copy on the CPU: safetensors wants contiguous tensors that share no memory.
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
        return {TENSOR: key}
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, list):
        return [encode(item, f"{key}.{index}", tensors) for index, item in enumerate(value)]
    if isinstance(value, tuple):
        return {TUPLE: [encode(item, f"{key}.{index}", tensors) for index, item in enumerate(value)]}
    if isinstance(value, dict):
        items = []
        for name, item in value.items():
            if isinstance(name, bool) or not isinstance(name, int | str):
                raise TypeError(f"{key}: dict key {name!r} is not a string or an integer")
            items.append([name, encode(item, f"{key}.{name}", tensors)])
        return {DICT: items}
    raise TypeError(
        f"{key} is of type {type(value).__qualname__}; a checkpoint holds only tensors, numbers, strings, "
        "booleans, None, lists, tuples and dicts"
    )


def decode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """The inverse of :func:`encode`. Raises ``ValueError`` naming ``where`` for anything malformed."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, list):
        return [decode(item, tensors, where) for item in value]
    if isinstance(value, dict) and len(value) == 1:
        [(tag, content)] = value.items()
        if tag == TENSOR and isinstance(content, str):
            if content not in tensors:
                raise ValueError(f"{where}: refers to tensor {content!r}, which is not in the checkpoint")
            return tensors[content]
        if tag == TUPLE and isinstance(content, list):
            return tuple(decode(item, tensors, where) for item in content)
        if tag == DICT and isinstance(content, list):
            result: dict[Any, Any] = {}
            for pair in content:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int | str)):
                    raise ValueError(f"{where}: malformed dict entry {pair!r:.60}")
                result[pair[0]] = decode(pair[1], tensors, where)
            return result
    raise ValueError(f"{where}: unexpected value {value!r:.60}")


# -- random number generators -------------------------------------------------------------------


def capture_rng(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The states of Python's ``random``, torch's CPU generator and every initialised CUDA device.

    CUDA is not initialised just to read its state: if nothing has used it, nothing has drawn from it.
    """
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss_next],
        "torch": encode(torch.get_rng_state(), "rng.torch", tensors),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = [
            encode(generator, f"rng.cuda.{index}", tensors)
            for index, generator in enumerate(torch.cuda.get_rng_state_all())
        ]
    return state


def restore_rng(state: Any, tensors: dict[str, torch.Tensor], where: str) -> list[str]:
    """Put the generators back as :func:`capture_rng` found them. Returns notes about what could
    not be restored here (CUDA states on a machine with fewer or no CUDA devices)."""
    if not isinstance(state, dict):
        raise ValueError(f"{where}: 'rng' must be a table, got {state!r:.60}")
    python = state.get("python")
    try:
        version, internal, gauss_next = python  # type: ignore[misc]
        random.setstate((version, tuple(internal), gauss_next))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{where}: the state of Python's random module is malformed ({exc})") from None
    cpu = decode(state.get("torch"), tensors, where)
    if not isinstance(cpu, torch.Tensor) or cpu.dtype != torch.uint8 or cpu.ndim != 1:
        raise ValueError(f"{where}: the state of torch's CPU generator is malformed")
    try:
        torch.set_rng_state(cpu)
    except RuntimeError as exc:
        raise ValueError(f"{where}: the state of torch's CPU generator is malformed ({exc})") from None
    cuda = state.get("cuda", [])
    if not isinstance(cuda, list):
        raise ValueError(f"{where}: 'rng.cuda' must be a list")
    generators = [decode(item, tensors, where) for item in cuda]
    if not all(isinstance(g, torch.Tensor) and g.dtype == torch.uint8 for g in generators):
        raise ValueError(f"{where}: the state of a CUDA generator is malformed")
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for index, generator in enumerate(generators[:available]):
        torch.cuda.set_rng_state(generator, index)
    if len(generators) > available:
        return [
            f"the random state of {len(generators) - available} CUDA device(s) was not restored: "
            f"this machine has {available}"
        ]
    return []

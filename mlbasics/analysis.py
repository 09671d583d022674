"""Why σ is needed: a stack of linear layers with nothing between them is one linear layer.

Lin3(Lin2(Lin1(x))) = W3(W2(W1x + b1) + b2) + b3 = (W3·W2·W1)x + (W3·W2·b1 + W3·b2 + b3)
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from mlbasics.errors import ValidationError


class NotCollapsibleError(ValidationError):
    """The model has a non-linear layer, so no single linear map equals it."""


def _layers(module: nn.Module, path: str = "") -> Iterator[tuple[str, nn.Module]]:
    """The leaf layers in the order a Sequential applies them (nested Sequentials are flattened)."""
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            yield from _layers(child, f"{path}.{name}" if path else name)
    else:
        yield path or type(module).__name__, module


def collapse(model: nn.Module) -> nn.Linear:
    """The single ``nn.Linear`` equal to ``model``, a linear layer or a ``nn.Sequential`` of linear
    layers (``nn.Identity`` between them is allowed: it is linear too).

    W = Wk···W2·W1 and b = Wk···W2·b1 + ··· + Wk·b(k-1) + bk, computed in the model's dtype.
    Raises :class:`NotCollapsibleError` naming the first layer that is not linear.
    """
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    for path, layer in _layers(model):
        if isinstance(layer, nn.Identity):
            continue
        if type(layer) is not nn.Linear:
            raise NotCollapsibleError(
                [
                    f"cannot collapse: layer {path} ({type(layer).__name__}) is not linear, so no single "
                    "linear map equals this model"
                ]
            )
        with torch.no_grad():
            layer_bias = layer.bias if layer.bias is not None else torch.zeros_like(layer.weight[:, 0])
            if weight is None or bias is None:
                weight, bias = layer.weight.clone(), layer_bias.clone()
            else:
                if layer.in_features != weight.shape[0]:
                    raise NotCollapsibleError(
                        [
                            f"cannot collapse: layer {path} takes {layer.in_features} inputs but the layer "
                            f"before it gives {weight.shape[0]}"
                        ]
                    )
                weight, bias = layer.weight @ weight, layer.weight @ bias + layer_bias
    if weight is None or bias is None:
        raise NotCollapsibleError(["cannot collapse: the model has no linear layer"])
    single = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        single.weight.copy_(weight)
        single.bias.copy_(bias)
    return single

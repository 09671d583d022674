"""Property 3, the NumPy slide: the hand-derived gradient of E = ½·Σ(y - Xw - b)² is autograd's,
and one step of the lecture's NumPy update is one step of mlbasics' ``sgd`` with ``sse-half``.

    dE/dw = -Xᵀ(y - Xw - b)        dE/db = -Σ(y - Xw - b)        w <- w - lr·dE/dw, b <- b - lr·dE/db

X, w, b and y are drawn by Hypothesis as NumPy float64 arrays; the gradients agree within the
rounding-error bound of computing them (tests/_rounding.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from _rounding import gamma, underflow_floor
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlbasics import Registry

REGISTRY = Registry.isolated()
Array = npt.NDArray[np.float64]
VALUES = st.floats(-10.0, 10.0, allow_subnormal=False)


@st.composite
def slides(draw: st.DrawFn) -> tuple[Array, Array, float, Array]:
    """X (n, d), w (d,), b and y (n,), as the lecture's NumPy code holds them."""
    n, d = draw(st.integers(1, 12), label="n"), draw(st.integers(1, 5), label="d")
    x = draw(hnp.arrays(np.float64, (n, d), elements=VALUES), label="X")
    w = draw(hnp.arrays(np.float64, (d,), elements=VALUES), label="w")
    y = draw(hnp.arrays(np.float64, (n,), elements=VALUES), label="y")
    return x, w, draw(VALUES, label="b"), y


def hand_gradient(x: Array, w: Array, b: float, y: Array) -> tuple[Array, float]:
    """The lecture's derivation, in NumPy."""
    residual = y - x @ w - b
    return -x.T @ residual, float(-residual.sum())


def gradient_bound(x: Array, w: Array, b: float, y: Array) -> tuple[Array, float]:
    """How far two correct computations of the gradient can differ: both round the residual
    (d + 2 operations) and then a sum over n samples, so 2·γ_(n+d+3) times the same computation
    on absolute values."""
    n, d = x.shape
    scale = np.abs(y) + np.abs(x) @ np.abs(w) + abs(b)
    g = 2 * gamma(n + d + 3, torch.float64)
    floor = underflow_floor(n + d + 3, torch.float64, float(np.abs(x).max(initial=1.0)))
    return g * (np.abs(x).T @ scale) + floor, g * float(scale.sum()) + floor


def _linear_model(w: Array, b: float) -> torch.nn.Linear:
    model = REGISTRY.build("model", "linear", in_features=len(w)).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w).unsqueeze(0))
        model.bias.fill_(b)
    return model


@settings(max_examples=100)
@given(slide=slides())
def test_hand_derived_gradient_equals_autograd(slide: tuple[Array, Array, float, Array]) -> None:
    x, w, b, y = slide
    model = _linear_model(w, b)
    loss = REGISTRY.build("loss", "sse-half")

    loss(model(torch.from_numpy(x)), torch.from_numpy(y).unsqueeze(1)).backward()

    hand_w, hand_b = hand_gradient(x, w, b, y)
    bound_w, bound_b = gradient_bound(x, w, b, y)
    assert model.weight.grad is not None
    assert model.bias.grad is not None
    auto_w, auto_b = model.weight.grad[0].numpy(), float(model.bias.grad[0])
    assert np.all(np.abs(auto_w - hand_w) <= bound_w), (auto_w, hand_w, bound_w)
    assert abs(auto_b - hand_b) <= bound_b, (auto_b, hand_b, bound_b)


@settings(max_examples=100)
@given(slide=slides(), lr=st.floats(1e-4, 0.1))
def test_one_numpy_update_is_one_sgd_step_with_sse_half(
    slide: tuple[Array, Array, float, Array], lr: float
) -> None:
    x, w, b, y = slide
    model = _linear_model(w, b)
    loss = REGISTRY.build("loss", "sse-half")
    optimizer = REGISTRY.build("optimizer", "sgd", list(model.parameters()), lr=lr)

    optimizer.zero_grad()
    loss(model(torch.from_numpy(x)), torch.from_numpy(y).unsqueeze(1)).backward()
    optimizer.step()

    hand_w, hand_b = hand_gradient(x, w, b, y)
    numpy_w, numpy_b = w - lr * hand_w, b - lr * hand_b
    bound_w, bound_b = gradient_bound(x, w, b, y)
    # The update itself rounds twice (the product and the difference) on top of the gradient's error.
    u = gamma(2, torch.float64)
    step_w = lr * bound_w + u * (np.abs(w) + lr * np.abs(hand_w) + bound_w)
    step_b = lr * bound_b + u * (abs(b) + lr * abs(hand_b) + bound_b)
    with torch.no_grad():
        assert np.all(np.abs(model.weight[0].numpy() - numpy_w) <= step_w)
        assert abs(float(model.bias[0]) - numpy_b) <= step_b

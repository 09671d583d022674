"""Property 9: CPU and CUDA compute the same forward pass, gradients and training steps, within
float32 tolerance, with TF32 off (TF32 rounds matmul inputs to 10 mantissa bits, which is a
different computation, not a device difference). Skipped cleanly where there is no CUDA device.

Models use smooth activations (tanh, sigmoid): at a kink of relu, a pre-activation that rounds to
+1e-9 on one device and -1e-9 on the other switches the gradient, which is not a difference
between the devices' arithmetic worth reporting.
"""

from __future__ import annotations

import copy

import attrs
import pytest
import torch
from _rounding import tf32_off
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mlbasics import Registry
from mlbasics.testing.strategies import seeds, tensors

pytestmark = pytest.mark.cuda

REGISTRY = Registry.isolated()
STEPS = 5
#: float32 with TF32 off: independent summation orders agree to a few ulp per operation; 1e-4
#: relative to the tensor's largest entry leaves room for hundreds of them.
RTOL = 1e-4


def assert_same(cuda: torch.Tensor, cpu: torch.Tensor, what: str) -> None:
    scale = max(float(cpu.abs().max()), 1.0)
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=RTOL, atol=RTOL * scale, msg=lambda m: f"{what}: {m}")


@attrs.frozen
class SetUp:
    """A model (linear, or an MLP with a smooth activation) and the seed that initialises it, a
    batch with targets, a loss and a learning rate."""

    model: str
    params: dict[str, object]
    seed: int
    x: torch.Tensor
    y: torch.Tensor
    loss: str
    lr: float

    def build(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model: nn.Module = REGISTRY.build("model", self.model, in_features=self.x.shape[1], **self.params)
        return model


@st.composite
def set_ups(draw: st.DrawFn) -> SetUp:
    d, n = draw(st.integers(1, 4), label="d"), draw(st.integers(1, 16), label="n")
    model = draw(st.sampled_from(["linear", "mlp"]), label="model")
    params: dict[str, object] = {}
    if model == "mlp":
        params["hidden"] = draw(st.lists(st.integers(1, 8), min_size=1, max_size=3), label="hidden")
        params["activation"] = draw(st.sampled_from(["tanh", "sigmoid"]), label="activation")
    return SetUp(
        model=model,
        params=params,
        seed=draw(seeds(), label="seed"),
        x=draw(tensors(shape=(n, d), min_value=-2, max_value=2), label="x"),
        y=draw(tensors(shape=(n, 1), min_value=-2, max_value=2), label="y"),
        loss=draw(st.sampled_from(["mse", "sse-half"]), label="loss"),
        lr=draw(st.floats(1e-3, 0.05), label="lr"),
    )


@settings(max_examples=25)
@given(set_up=set_ups())
def test_cpu_and_cuda_agree_on_forward_gradients_and_training_steps(set_up: SetUp) -> None:
    model, x, y = set_up.build(), set_up.x, set_up.y
    cuda = torch.device("cuda")
    runs = {}
    with tf32_off():
        for device in (torch.device("cpu"), cuda):
            replica = copy.deepcopy(model).to(device)
            loss = REGISTRY.build("loss", set_up.loss)
            optimizer = REGISTRY.build("optimizer", "sgd", list(replica.parameters()), lr=set_up.lr)
            features, targets = x.to(device), y.to(device)
            output = replica(features).detach()
            value = loss(replica(features), targets)
            value.backward()
            gradients = [p.grad.detach().clone() for p in replica.parameters() if p.grad is not None]
            for _ in range(STEPS):
                optimizer.zero_grad()
                loss(replica(features), targets).backward()
                optimizer.step()
            runs[device.type] = (
                output,
                value.detach(),
                gradients,
                [p.detach() for p in replica.parameters()],
            )
    (out_cpu, loss_cpu, grads_cpu, params_cpu), (out_cuda, loss_cuda, grads_cuda, params_cuda) = (
        runs["cpu"],
        runs["cuda"],
    )
    assert_same(out_cuda, out_cpu, "forward")
    assert_same(loss_cuda, loss_cpu, "loss")
    assert len(grads_cuda) == len(grads_cpu)
    for index, (g_cuda, g_cpu) in enumerate(zip(grads_cuda, grads_cpu, strict=True)):
        assert_same(g_cuda, g_cpu, f"gradient {index}")
    for index, (p_cuda, p_cpu) in enumerate(zip(params_cuda, params_cpu, strict=True)):
        assert_same(p_cuda, p_cpu, f"parameter {index} after {STEPS} steps")

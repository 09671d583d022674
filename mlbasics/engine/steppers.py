"""How the training loop takes its steps: one by one from Python, or replaying a captured CUDA graph.

The loop asks a :class:`Stepper` for ``n`` steps at a time and gets their losses back as one tensor
that is still on the device; it copies that tensor to the host once per sync interval either way.

Why a graph: a step of a model as small as the lecture's MLP is a few dozen tiny kernels. On a GPU,
launching each of them from Python costs far more than running it, so the GPU mostly waits. A CUDA
graph records the whole step once -- zero the gradients, forward, loss, backward, optimizer step,
and writing the loss into a history buffer -- and replays all of it with a single launch.

Capture follows PyTorch's recipe for whole-network capture (CUDA semantics notes, "Whole-network
capture"): a few eager warm-up steps on a side stream; gradients set to ``None`` so that the
captured backward allocates them from the graph's private memory pool; one capture of the step;
then ``replay()``. The recipe's static inputs come free: training is full batch, so the data
tensors never change. The warm-up steps are real training steps: their losses open the history,
so a graph run takes exactly the steps an eager run takes.

The graph path is used only on CUDA, only when the experiment allows it (``cuda_graph``, on by
default), and only when the step can be captured (:func:`capture_problem`). Otherwise training is
eager, and where the user could have expected a graph, a note says once why there is none.
Eager steps honour a stop request (Ctrl-C, SIGTERM) after the step it arrives in; graph replays
honour it at the end of the interval, which on a GPU is milliseconds later.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

import torch

from mlbasics.engine._gradients import gradient_reset
from mlbasics.engine.interrupts import Interrupt
from mlbasics.engine.solvers import ClosedFormSolver
from mlbasics.errors import first_line, one_line
from mlbasics.notes import note_once

if TYPE_CHECKING:
    from mlbasics.core.callbacks import Callback
    from mlbasics.engine.setup import Setup

EAGER: Final = "eager"
CUDA_GRAPH: Final = "cuda-graph"
CLOSED_FORM: Final = "closed-form"

#: Eager steps before the capture (PyTorch's recipe uses 3): they create the optimizer's state
#: (momentum buffers, step counters) and the libraries' lazy handles outside the capture.
WARMUP_STEPS: Final = 3
#: Shorter runs stay eager: the capture costs a device synchronisation and a recording up front,
#: which a run of a few steps would not win back.
MIN_GRAPH_EPOCHS: Final = 20
#: A plugin may tag its optimizer spec with this to say its step is safe to capture.
CAPTURABLE_TAG: Final = "capturable"

Step = Callable[[], torch.Tensor]


class Stepper(Protocol):
    """Takes training steps for the loop."""

    #: How the steps are taken: ``"eager"`` or ``"cuda-graph"``.
    mode: str

    def run(self, n: int) -> torch.Tensor:
        """Take ``n`` (>= 1) steps; return their losses, shaped (n,), on the device."""
        ...


def eager_steps(step: Step, n: int, interrupt: Interrupt) -> torch.Tensor:
    """Up to ``n`` steps from Python, ending early after the step during which a stop was requested
    (Ctrl-C, SIGTERM: see :mod:`mlbasics.engine.interrupts`). The losses stay on the device."""
    losses = []
    for _ in range(n):
        losses.append(step())
        if interrupt.signal:
            break
    return torch.stack(losses)


class EagerStepper:
    """One step at a time from Python: the lecture's loop."""

    mode: str = EAGER

    def __init__(self, step: Step, interrupt: Interrupt) -> None:
        self._step = step
        self._interrupt = interrupt

    def run(self, n: int) -> torch.Tensor:
        return eager_steps(self._step, n, self._interrupt)


class ClosedFormStepper:
    """A closed-form solver's one "step": solve on the training rows, then the loss of the solution."""

    mode: str = CLOSED_FORM

    def __init__(self, setup: Setup) -> None:
        self._setup = setup

    def run(self, n: int) -> torch.Tensor:
        setup = self._setup
        assert isinstance(setup.optimizer, ClosedFormSolver)
        setup.optimizer.solve(setup.model, setup.features, setup.targets)
        return setup.evaluate().reshape(1)


# -- building the step ---------------------------------------------------------------------------


def eager_step(setup: Setup) -> Callable[[], torch.Tensor]:
    """One epoch of training, returning its loss (detached, still on the device): one full-batch
    step, or with ``batch_size`` a pass of mini-batch steps (:mod:`mlbasics.data.batches`)."""
    from mlbasics.data.batches import is_full_batch, minibatch_epoch

    if setup.ddp is not None:  # data-parallel under torchrun: each rank a shard of every batch
        from mlbasics.engine.data_parallel import eager_step as data_parallel_step

        return data_parallel_step(setup)
    body = batch_step(setup)
    if is_full_batch(setup):
        x, y = setup.features, setup.targets
        return lambda: body(x, y)
    return minibatch_epoch(setup, body)


def batch_step(setup: Setup) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """One training step on rows ``x``, ``y``, returning its loss (detached, still on the device)."""
    model, loss_fn, optimizer = setup.model, setup.loss, setup.optimizer
    assert isinstance(optimizer, torch.optim.Optimizer)
    zero_grad = gradient_reset(optimizer)

    if setup.needs_closure:

        def step_with_closure(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            def closure() -> Any:
                zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()  # type: ignore[no-untyped-call]
                return loss

            loss: torch.Tensor = optimizer.step(closure)  # type: ignore[assignment]
            return loss.detach()

        return step_with_closure

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        return loss.detach()

    return step


# -- when a graph can be used --------------------------------------------------------------------


def capture_problem(setup: Setup) -> str | None:
    """Why ``setup``'s training step cannot be captured in a CUDA graph, or ``None`` if it can.
    Looks only at the components, so it can be asked (and tested) on any device."""
    spec = setup.specs["optimizer"]
    optimizer = setup.optimizer
    from mlbasics.data.batches import is_full_batch

    if not is_full_batch(setup):
        return (
            f"the run trains on mini-batches (batch_size {setup.experiment.batch_size}): an epoch is "
            "many steps over rows gathered anew each epoch, and the captured step is one full-batch step"
        )
    if isinstance(optimizer, ClosedFormSolver):
        return f"optimizer {spec.name!r} solves in closed form: there is no step to capture"
    if setup.needs_closure:
        return (
            f"optimizer {spec.name!r} needs a closure (it evaluates the loss several times per step, "
            "deciding on the host how often)"
        )
    if type(optimizer) is torch.optim.SGD:  # PyTorch's own example of a capturable step
        return None
    if CAPTURABLE_TAG in spec.tags:
        return None
    kind = f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"
    flags = [group.get("capturable") for group in optimizer.param_groups]
    if flags and all(flag is True for flag in flags):
        return None
    if any(flag is not None for flag in flags):
        return (
            f"optimizer {spec.name!r} ({kind}) was built with capturable=False; "
            "build it with capturable=True to allow capture"
        )
    return (
        f"optimizer {spec.name!r} ({kind}) is not known to be safe to capture (captured are: "
        f"torch.optim.SGD, optimizers built with capturable=True, specs tagged {CAPTURABLE_TAG!r})"
    )


def use_cuda_graph(setup: Setup, epochs: int) -> bool:
    """Whether to train ``setup`` for ``epochs`` with a CUDA graph. Where the user could expect
    one (CUDA, ``cuda_graph`` on, a run long enough) but capture is not possible, says why, once."""
    if not setup.experiment.cuda_graph or setup.device.type != "cuda" or epochs < MIN_GRAPH_EPOCHS:
        return False
    if setup.ddp is not None:  # DistributedDataParallel's all-reduces are not captured here
        note_once("CUDA graph capture is not used for data-parallel training; training eagerly")
        return False
    problem = capture_problem(setup)
    if problem is not None:
        note_once(f"CUDA graph capture not possible because {problem}; training eagerly")
        return False
    return True


def stepper_for(setup: Setup, *, epochs: int, interval: int, callbacks: Sequence[Callback] = ()) -> Stepper:
    """The stepper that trains ``setup`` for ``epochs`` more, ``interval`` steps per sync at most:
    a closed-form solver's, a CUDA graph's where one can be used, or the eager one. A callback
    that changes the optimizer's hyperparameters (a schedule) keeps training eager: a captured
    graph would go on with the values it was captured with."""
    if isinstance(setup.optimizer, ClosedFormSolver):
        return ClosedFormStepper(setup)
    changer = next((c for c in callbacks if c.changes_optimizer), None)
    if changer is not None and setup.device.type == "cuda" and setup.experiment.cuda_graph:
        from mlbasics.core.callbacks import named

        note_once(f"CUDA graph capture not used because {named(changer)} changes the optimizer as it trains")
        return EagerStepper(eager_step(setup), setup.interrupt)
    return make_stepper(setup, eager_step(setup), epochs=epochs, interval=interval)


def make_stepper(setup: Setup, step: Step, *, epochs: int, interval: int) -> Stepper:
    """The stepper for training ``setup`` for ``epochs``, ``interval`` steps per sync at most;
    ``step`` is the eager step (used as is, or for the warm-up before a capture)."""
    if use_cuda_graph(setup, epochs):
        return GraphStepper(setup, step, capacity=interval, backend=CudaGraphs(setup.device))
    return EagerStepper(step, setup.interrupt)


# -- the graph path ------------------------------------------------------------------------------


class GraphBackend(Protocol):
    """The device side of graph capture: :class:`CudaGraphs` on a GPU (tests substitute a stand-in
    that runs the captured body eagerly, so the rest of :class:`GraphStepper` is tested anywhere)."""

    def warm_up(self, steps: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Run ``steps`` (eager work returning a tensor) the way warm-up must run before a capture."""
        ...

    def host_sync_in(self, work: Callable[[], object]) -> str | None:
        """Run ``work``; say how it waits for the host (which a capture cannot hold), or ``None``."""
        ...

    def capture(self, body: Callable[[], None]) -> None:
        """Record ``body`` for :meth:`replay`; raises if it cannot be captured."""
        ...

    def replay(self, times: int) -> None:
        """Run the recorded body ``times`` times, in order."""
        ...


class CudaGraphs:
    """PyTorch's whole-network capture recipe, for one device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._side_stream = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
        self._graph: torch.cuda.CUDAGraph | None = None

    def warm_up(self, steps: Callable[[], torch.Tensor]) -> torch.Tensor:
        with torch.cuda.device(self.device):
            current = torch.cuda.current_stream()
            self._side_stream.wait_stream(current)
            with torch.cuda.stream(self._side_stream):
                result = steps()
            current.wait_stream(self._side_stream)
            # Made on the side stream, used on this one: its memory must not be reused until
            # this stream is done with it.
            result.record_stream(current)
        return result

    def host_sync_in(self, work: Callable[[], object]) -> str | None:
        # PyTorch can turn synchronising calls (.item(), .cpu(), nonzero, ...) into errors.
        previous = torch.cuda.get_sync_debug_mode()
        with torch.cuda.device(self.device):
            torch.cuda.set_sync_debug_mode("error")
            try:
                work()
            except RuntimeError as exc:
                return first_line(exc) or "no message"
            finally:
                torch.cuda.set_sync_debug_mode(previous)
        return None

    def capture(self, body: Callable[[], None]) -> None:
        graph = torch.cuda.CUDAGraph()
        # Entered left to right, so current_stream() is the device's. torch.cuda.graph sets its own
        # capture stream; if a failed capture leaves that set, the stream context puts ours back.
        with (
            torch.cuda.device(self.device),
            torch.cuda.stream(torch.cuda.current_stream()),
            torch.cuda.graph(graph),
        ):
            body()
        self._graph = graph

    def replay(self, times: int) -> None:
        assert self._graph is not None, "replay() before capture()"
        graph = self._graph
        with torch.cuda.device(self.device):  # replay() launches on the current device's stream
            for _ in range(times):
                graph.replay()


class GraphStepper:
    """Eager warm-up steps, then one capture of the whole step, then replays of it.

    Each replay writes its loss into ``history[position]`` and advances ``position``, both on the
    device, so no replay waits for the host.

    Before capturing, one more forward and backward pass runs with synchronising CUDA calls turned
    into errors, leaving no trace (grads dropped, buffers and random state restored): a model or
    loss that reads values on the host is found there, not halfway through a capture. Some torch
    versions do not fully clean up after a capture that fails (pytorch/pytorch#180395, #190308),
    so it is better not to start one that would. If a capture fails all the same, it says why once
    and carries on eagerly from where it was: no step is lost or repeated.
    """

    def __init__(self, setup: Setup, step: Step, *, capacity: int, backend: GraphBackend) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        assert isinstance(setup.optimizer, torch.optim.Optimizer)
        self.mode: str = CUDA_GRAPH
        self._setup = setup
        self._optimizer: torch.optim.Optimizer = setup.optimizer
        self._eager = step
        self._capacity = capacity
        self._backend = backend
        self._warmed = 0
        self._captured = False
        self._position = torch.zeros(1, dtype=torch.long, device=setup.device)
        self._history: torch.Tensor | None = None

    def run(self, n: int) -> torch.Tensor:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        parts = []
        if not self._captured and self.mode == CUDA_GRAPH:
            count = min(n, WARMUP_STEPS - self._warmed)
            parts.append(self._warm_up(count))
            n -= count
            if self._warmed == WARMUP_STEPS:
                self._capture(parts[0].dtype)
        if n > 0 and self.mode == EAGER:
            parts.append(eager_steps(self._eager, n, self._setup.interrupt))
        while n > 0 and self.mode == CUDA_GRAPH:
            count = min(n, self._capacity)
            parts.append(self._replay(count))
            n -= count
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _warm_up(self, count: int) -> torch.Tensor:
        with warnings.catch_warnings():
            # torch warns that a capturable optimizer stepping outside a capture is slower than
            # needed; these few steps are the warm-up that PyTorch's recipe asks for.
            warnings.filterwarnings("ignore", "This instance was constructed with capturable=True")
            losses = self._backend.warm_up(lambda: torch.stack([self._eager() for _ in range(count)]))
        self._warmed += count
        return losses

    def _capture(self, dtype: torch.dtype) -> None:
        model, device = self._setup.model, self._setup.device
        buffers = [(buffer, buffer.clone()) for buffer in model.buffers()]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            sync = self._backend.host_sync_in(self._forward_backward)
        with torch.no_grad():
            for buffer, value in buffers:
                buffer.copy_(value)
        # Drop the check's grads. With the grads None, the captured backward allocates them in
        # the graph's pool, and each replay writes them afresh instead of adding to the last step's.
        self._optimizer.zero_grad(set_to_none=True)
        if sync is not None:
            self._give_up(f"the step waits for the host ({sync})")
            return
        self._history = torch.empty(self._capacity, dtype=dtype, device=device)
        try:
            self._backend.capture(self._body)
        except Exception as exc:
            # Nothing captured has run: the model and optimizer are as the warm-up left them.
            # The grads the capture allocated were never computed; drop them.
            self._optimizer.zero_grad(set_to_none=True)
            self._give_up(f"capturing the step failed ({one_line(exc)})")
            return
        self._captured = True

    def _give_up(self, reason: str) -> None:
        self.mode = EAGER
        note_once(f"CUDA graph capture not possible because {reason}; training eagerly")

    def _forward_backward(self) -> torch.Tensor:
        setup = self._setup
        self._optimizer.zero_grad(set_to_none=True)
        loss = setup.loss(setup.model(setup.features), setup.targets)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    def _body(self) -> None:
        """The captured step: the eager step's work, plus writing the loss on the device."""
        history, position = self._history, self._position
        assert history is not None
        loss = self._forward_backward()  # its zero_grad has nothing to do at capture; see _capture
        self._optimizer.step()
        history.index_copy_(0, position, loss.detach().reshape(1).to(history.dtype))
        position.add_(1)

    def _replay(self, count: int) -> torch.Tensor:
        assert self._history is not None
        self._position.zero_()
        self._backend.replay(count)
        # A copy: the next replays overwrite the buffer.
        return self._history[:count].clone()

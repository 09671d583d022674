"""Run folders: checkpoints written atomically, checked when read, never unpickled.

``mlbasics train --save DIR`` (or ``mlbasics.train(..., save=DIR)``) keeps its checkpoint in::

    DIR/checkpoint/          the latest checkpoint; replaced as a whole, never edited in place
        manifest.json        format version, epoch, and the SHA-256 of each file below
        experiment.toml      the experiment: components by registry name, with their params
        history.csv          epoch,loss for every epoch so far (exact: floats written as repr);
                             then validation_loss with a validation part, and a column for
                             each metric's value (r2, validation_r2, ...), filled at the
                             sync epochs it was computed at
        standardization.safetensors   the training rows' means and stds (standardize only)
        model.safetensors    the model's state_dict
        state.safetensors    the optimizer's tensors, the random generators' states and the
                             experiment's callbacks' tensors
        state.json           the rest: epoch, the optimizer's non-tensor state, Python's random
                             state, each component's params, plugin and version, the data's
                             column names, a fingerprint of the data and the state of each of the
                             experiment's callbacks (``Callback.state_dict``), by place and name

A new checkpoint is written into a temporary folder ``DIR/.checkpoint-*.tmp``, flushed to disk, and
swapped in by two renames: ``checkpoint`` -> ``checkpoint.previous``, then the temporary folder ->
``checkpoint``; the previous one is deleted last. A crash at any moment leaves the new or the
previous checkpoint whole; a reader that finds no ``checkpoint`` (a crash between the renames) reads
``checkpoint.previous``. The checksums catch truncated or edited files (they are not a signature:
anyone can recompute them). Nothing in a run folder is executed: components are rebuilt from the
installed plugins by name, and tensors are read with safetensors.

A :class:`Checkpointer` holds a lock on its run folder (``DIR/.lock``, see :mod:`mlbasics.runs._run_lock`)
from when it is made until training ends, so a second run saving into the same folder is refused.
When the operating system refuses a write (a full disk, a file system gone read-only), the new
checkpoint is abandoned whole, the previous one stays as it was, and training stops with a
:class:`mlbasics.SaveError` that says which checkpoint is the last good one and carries the result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import safetensors.torch
import torch
from torch import nn

from mlbasics._files import check_names, refusal, temporary_folder
from mlbasics._version import __version__
from mlbasics.core.callbacks import Callback, callback_failed, named
from mlbasics.core.registry import Registry, default_registry, shown_params
from mlbasics.core.specs import Kind
from mlbasics.data.arrays import prediction_rows
from mlbasics.data.standardization import Standardization
from mlbasics.engine.data_parallel import world_size_of
from mlbasics.engine.experiment import Component, Experiment
from mlbasics.engine.results import TrainResult
from mlbasics.engine.setup import ComponentInfo, Setup
from mlbasics.engine.solvers import ClosedFormSolver
from mlbasics.errors import DataError, MlbasicsError, PluginError, SaveError, ValidationError, one_line
from mlbasics.runs._checkpoint_files import (
    FILES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    OPTIONAL_FILES,
    read_components,
    read_experiment,
    read_histories,
    read_manifest,
    read_state,
    read_tensors,
    verified,
)
from mlbasics.runs._provenance import provenance_problems, refuse
from mlbasics.runs._run_lock import RunFolderLock
from mlbasics.runs._state import DICT, capture_rng, decode, encode, restore_rng

CHECKPOINT: Final = "checkpoint"
PREVIOUS: Final = "checkpoint.previous"
_STAGING_PREFIX: Final = ".checkpoint-"
#: The longest path a checkpoint writes inside its run folder, for the check of the path's length.
_LONGEST_INSIDE: Final = f"{_STAGING_PREFIX}xxxxxxxx.tmp/state.safetensors"


# -- writing --------------------------------------------------------------------------------------


def has_checkpoint(run: str | Path) -> bool:
    """Whether ``run`` holds a checkpoint (whole or not)."""
    folder = Path(run)
    return (folder / CHECKPOINT).exists() or (folder / PREVIOUS).exists()


def check_run_folder(run: str | Path, *, overwrite: bool = False) -> None:
    """Fail before training, not after, if checkpoints could not be written to ``run``: it is a
    file, a name in it is too long, it cannot be created, or it already holds another run (unless
    ``overwrite``). Creates nothing; :class:`Checkpointer` then locks the folder, which creates it."""
    folder = Path(run)
    check_names(run, what=f"{run}: cannot be a run folder", writing=True, longest_inside=_LONGEST_INSIDE)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{run}: exists and is not a folder; --save needs a folder for the run")
    if has_checkpoint(folder) and not overwrite:
        epoch = _peek_epoch(folder)
        held = f"a run (epoch {epoch})" if epoch is not None else "a checkpoint"
        raise DataError(
            f"{run} already holds {held}; continue it with --resume {run}, or pass --force to replace it"
        )
    ancestor = folder
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SaveError(f"{run}: cannot write there ({ancestor} is a file, not a folder)")
    if not os.access(ancestor, os.W_OK | os.X_OK):  # also false on a read-only file system, for root too
        raise SaveError(f"{run}: cannot write there ({ancestor} is not a writable folder)")


def _peek_epoch(run: Path) -> int | None:
    """The epoch a run folder's checkpoint is at, or ``None`` if its manifest cannot tell."""
    try:
        manifest = read_manifest(locate(run))
    except DataError:
        return None
    epoch: int = manifest["epoch"]
    return epoch


def write_checkpoint(run: str | Path, setup: Setup) -> Path:
    """Write ``setup``'s state as the latest checkpoint of ``run`` (atomically, see the module's
    docstring) and return the checkpoint's folder. If the operating system refuses any part of it,
    raises :class:`SaveError` and leaves the previous checkpoint as it was."""
    folder = Path(run)
    files = _checkpoint_files(setup)  # everything is computed before anything touches the disk
    try:
        return _write_files(folder, files, epoch=len(setup.history))
    except OSError as exc:
        reason = refusal(exc, folder, creates_folders=True)
        raise SaveError(f"{run}: cannot write a checkpoint ({reason})", reason=reason) from None


def _write_files(folder: Path, files: dict[str, bytes], *, epoch: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _recover(folder)
    staging = temporary_folder(folder, prefix=_STAGING_PREFIX, suffix=".tmp")
    current, previous = folder / CHECKPOINT, folder / PREVIOUS
    try:
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "epoch": epoch,
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        }
        for name, data in [*files.items(), (MANIFEST, _json_bytes(manifest))]:
            _write_synced(staging / name, data)
        _fsync_directory(staging)
        if previous.exists():  # left by a swap whose clean-up did not finish; `current` is whole
            shutil.rmtree(previous)
        if current.exists():
            os.replace(current, previous)
        os.replace(staging, current)
        _fsync_directory(folder)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):  # a refused second rename: the previous one is current again
            with contextlib.suppress(OSError):
                _recover(folder)
        raise
    shutil.rmtree(folder / PREVIOUS, ignore_errors=True)
    for stale in folder.glob(f"{_STAGING_PREFIX}*.tmp"):  # left by a process killed mid-write
        shutil.rmtree(stale, ignore_errors=True)
    return current


def _recover(folder: Path) -> None:
    """A crash between the two renames leaves only ``checkpoint.previous``: make it current again."""
    if not (folder / CHECKPOINT).exists() and (folder / PREVIOUS).exists():
        os.replace(folder / PREVIOUS, folder / CHECKPOINT)


def _checkpoint_files(setup: Setup) -> dict[str, bytes]:
    state_tensors: dict[str, torch.Tensor] = {}
    optimizer = None
    if not isinstance(setup.optimizer, ClosedFormSolver):
        try:
            optimizer = encode(setup.optimizer.state_dict(), "optimizer", state_tensors)
        except TypeError as exc:
            raise PluginError(
                f"optimizer {setup.components['optimizer'].name!r} cannot be checkpointed: {exc}"
            ) from None
    model_tensors = {
        name: tensor.detach().to("cpu", copy=True).contiguous()
        for name, tensor in setup.model.state_dict().items()
    }
    data: dict[str, Any] = {
        "feature_names": list(setup.dataset.feature_names),
        "target_name": setup.dataset.target_name,
        "target_names": list(setup.dataset.target_names),
        "fingerprint": setup.data_fingerprint,
    }
    if setup.dataset.classes is not None:  # what a prediction's class indices are called
        data["classes"] = list(setup.dataset.classes)
    if setup.split is not None and not setup.split.is_whole:
        data["split"] = {"sizes": setup.split.sizes(), "fingerprint": setup.split.fingerprint()}
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "epoch": len(setup.history),
        "mlbasics_version": __version__,
        "torch_version": torch.__version__,
        "device": str(setup.device),
        "ranks": world_size_of(setup),  # how many ranks trained it (mlbasics.engine.data_parallel)
        "components": {kind: info.to_dict() for kind, info in setup.components.items()},
        "data": data,
        "optimizer": optimizer,
        "rng": capture_rng(state_tensors),
    }
    callbacks = _callback_states(setup, state_tensors)
    if callbacks:
        state["callbacks"] = callbacks
    metadata = {"format": FORMAT}
    optional = {}
    if setup.standardization is not None:
        optional["standardization.safetensors"] = safetensors.torch.save(
            setup.standardization.to_tensors(), metadata=metadata
        )
    return optional | {
        "experiment.toml": setup.experiment.to_toml().encode(),
        "history.csv": _history_csv(setup.history, setup.validation_history, setup.metric_history).encode(),
        "model.safetensors": safetensors.torch.save(model_tensors, metadata=metadata),
        "state.safetensors": safetensors.torch.save(state_tensors, metadata=metadata),
        "state.json": _json_bytes(state),
    }


def _callback_states(setup: Setup, tensors: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    """The state of each of the experiment's callbacks, in their order, by name: its JSON values
    here, its tensors into ``tensors`` (state.safetensors). Empty when none has any."""
    infos = setup.listed.get("callbacks", [])
    states = []
    for index, (callback, info) in enumerate(zip(setup.callbacks, infos, strict=False)):
        try:  # what it returns is its own: a state that cannot be saved is its bug, named
            state = callback.state_dict()
            if not isinstance(state, dict):
                raise TypeError(f"state_dict() returned a {type(state).__name__}, not a dict")
            encoded = encode(state, f"callbacks.{index}", tensors)
        except MlbasicsError:
            raise
        except Exception as exc:
            raise callback_failed(callback, "saving its state", exc) from exc
        states.append({"name": info.name, "state": encoded})
    return states if any(entry["state"] != {DICT: []} for entry in states) else []


def _history_csv(
    history: Sequence[float],
    validation: Sequence[tuple[int, float]] = (),
    metrics: Mapping[str, Sequence[tuple[int, float]]] | None = None,
) -> str:
    """``epoch,loss`` for every epoch, then a column for the validation loss (with a validation
    part) and one per metric value (``r2``, ``validation_r2``, ...): each filled at the sync
    epochs it was computed at, empty in between."""
    columns = {"validation_loss": dict(validation)} if validation else {}
    columns |= {name: dict(pairs) for name, pairs in (metrics or {}).items()}
    # The cells after the loss, written once per sync epoch; every other row's are empty.
    empty = "," * len(columns)
    synced = {
        epoch: "," + ",".join(_cell(values.get(epoch)) for values in columns.values())
        for epoch in set().union(*columns.values())
    }
    # repr() writes the shortest text that reads back as the same float: the history stays exact.
    return (
        ",".join(["epoch", "loss", *columns])
        + "\n"
        + "".join(
            f"{epoch},{loss!r}{synced.get(epoch, empty)}\n" for epoch, loss in enumerate(history, start=1)
        )
    )


def _cell(value: float | None) -> str:
    return "" if value is None else repr(value)


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=1) + "\n").encode()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _fsync_directory(path: Path) -> None:
    """Make a rename inside ``path`` durable (POSIX; Windows cannot open folders, and needs not)."""
    if os.name != "posix":
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- the callback ---------------------------------------------------------------------------------


class Checkpointer(Callback):
    """Writes checkpoints into the run folder ``folder``: every ``every`` epochs (the loop then syncs
    at every multiple of it) and when training ends, also when a signal or a callback stopped it.
    Never after an error or a divergence: then the last checkpoint written is the one kept. Each
    checkpoint holds the state of the experiment's callbacks (their ``state_dict``).

    Making one checks the folder and locks it (creating it), so that nothing else saves into it;
    the lock is released when training ends (or by :meth:`close`). A checkpoint that cannot be
    written stops training with a :class:`mlbasics.SaveError` naming the last good checkpoint.

    ``overwrite`` lets a new run replace a run already in ``folder``. ``written_epoch`` tells it
    which epoch the folder's checkpoint already holds (a run resumed into its own folder), so an
    unchanged state is not written again.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        every: int | None = None,
        overwrite: bool = False,
        written_epoch: int | None = None,
    ) -> None:
        self.check_interval(every)
        self._overwrite = overwrite or written_epoch is not None
        check_run_folder(folder, overwrite=self._overwrite)
        self.folder = Path(folder)
        self.sync_every = every  # the loop must stop by at every interval for the state to be copied
        self.written_epoch = written_epoch
        self._next = 0
        self._failed = False
        self._lock: RunFolderLock | None = None
        self._take_lock()

    @staticmethod
    def check_interval(every: int | None) -> None:
        """Refuse a checkpoint interval that is not a whole number of epochs >= 1."""
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ValidationError([f"checkpoint interval must be an integer >= 1, got {every!r}"])

    def _take_lock(self) -> None:
        self._lock = RunFolderLock.acquire(self.folder)
        try:  # again, now that no other run can write: one may have finished since the first check
            check_run_folder(self.folder, overwrite=self._overwrite)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the run folder (done when training ends); a folder this checkpointer created
        and never wrote into is removed."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    @classmethod
    def for_run(
        cls,
        folder: str | Path,
        resumed: Checkpoint | None,
        *,
        every: int | None = None,
        overwrite: bool = False,
    ) -> Checkpointer:
        """The checkpointer into ``folder`` of a fresh run (``resumed`` is ``None``) or of one that
        continues ``resumed``: resumed into its own folder, the checkpoint there counts as written."""
        same_folder = resumed is not None and Path(folder).resolve() == resumed.run.resolve()
        written_epoch = resumed.epoch if resumed is not None and same_folder else None
        return cls(folder, every=every, overwrite=overwrite, written_epoch=written_epoch)

    @property
    def every(self) -> int | None:
        """The checkpoint interval in epochs (``None``: only at the end): :attr:`sync_every`."""
        return self.sync_every

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        if self._lock is None:  # used for a second training: lock again
            self._overwrite = True  # the folder may hold this checkpointer's own last checkpoint
            self._take_lock()
        self._failed = False
        if self.every is not None:
            self._next = (len(setup.history) // self.every + 1) * self.every

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        if self.every is not None and epoch >= self._next:
            self._write(setup)
            self._next = (epoch // self.every + 1) * self.every

    def on_train_end(self, setup: Setup, result: TrainResult | None) -> None:
        try:
            if result is not None and not self._failed and self.written_epoch != len(setup.history):
                self._write(setup)
        finally:
            self.close()

    def _write(self, setup: Setup) -> None:
        epoch = len(setup.history)
        try:
            write_checkpoint(self.folder, setup)
        except SaveError as exc:
            self._failed = True
            kept = (
                f"the checkpoint of epoch {self.written_epoch} there is the last good one"
                if self.written_epoch is not None
                else "no checkpoint was written there"
            )
            raise SaveError(
                f"{self.folder}: cannot write the checkpoint of epoch {epoch} ({exc.reason}); {kept}",
                reason=exc.reason,
            ) from None
        self.written_epoch = epoch


# -- reading --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, eq=False)
class Checkpoint:
    """A checkpoint read back from a run folder, every file checked against the manifest.

    ``Checkpoint.load(DIR)`` reads it; :meth:`model` rebuilds the trained model (through the
    registry, by name) and :meth:`predict` uses it; :func:`mlbasics.resume` continues the run.
    """

    run: Path
    folder: Path
    epoch: int
    experiment: Experiment
    history: list[float]
    components: dict[Kind, ComponentInfo]
    feature_names: tuple[str, ...]
    target_name: str
    #: One name per target column (checkpoints written before there could be several: the one name).
    target_names: tuple[str, ...]
    data_fingerprint: str
    device: str
    mlbasics_version: str
    weights: dict[str, torch.Tensor] = attrs.field(repr=False)
    optimizer_state: Any = attrs.field(repr=False)
    rng_state: Any = attrs.field(repr=False)
    state_tensors: dict[str, torch.Tensor] = attrs.field(repr=False)
    #: ``(epoch, validation loss)`` at each sync point (empty without a validation part).
    validation_history: list[tuple[int, float]] = attrs.field(factory=list)
    #: ``(epoch, value)`` of each metric at each sync point, by value name (``"r2"``,
    #: ``"validation_r2"``; empty for a run without metrics).
    metric_history: dict[str, list[tuple[int, float]]] = attrs.field(factory=dict)
    #: The statistics the run's data were scaled with (``standardize``), or ``None``.
    standardization: Standardization | None = None
    #: The held-out split's sizes and row fingerprint (``None``: nothing held out by a split).
    split: dict[str, Any] | None = None
    #: The state of each of the experiment's callbacks, in their order: ``{"name": ..., "state":
    #: ...}`` as state.json holds it (tensors referring into :attr:`state_tensors`).
    callback_states: list[dict[str, Any]] = attrs.field(factory=list, repr=False)
    #: The class names, in the order of the model's outputs, for a run on class labels.
    classes: tuple[str, ...] | None = None

    @classmethod
    def load(cls, run: str | Path) -> Checkpoint:
        """Read and check the latest checkpoint of run folder ``run``. Every problem (missing,
        truncated, edited or foreign files) is a :class:`mlbasics.DataError` naming the file."""
        folder = locate(run)
        manifest = read_manifest(folder)
        listed = [name for name in OPTIONAL_FILES if name in manifest["files"]]
        contents = {name: verified(folder, name, manifest) for name in (*FILES, *listed)}
        state = read_state(folder / "state.json", contents["state.json"])
        epoch = manifest["epoch"]
        if state["epoch"] != epoch:
            raise DataError(f"{folder / 'state.json'}: epoch {state['epoch']}, but {MANIFEST} says {epoch}")
        history, validation_history, metric_history = read_histories(
            folder / "history.csv", contents["history.csv"], epoch
        )
        standardization = None
        if "standardization.safetensors" in contents:
            path = folder / "standardization.safetensors"
            try:
                standardization = Standardization.from_tensors(
                    read_tensors(path, contents["standardization.safetensors"]), str(path)
                )
            except ValueError as exc:
                raise DataError(str(exc)) from None
        experiment = read_experiment(folder / "experiment.toml", contents["experiment.toml"])
        components = read_components(folder / "state.json", state["components"], experiment)
        data = state["data"]
        return cls(
            run=Path(run),
            folder=folder,
            epoch=epoch,
            experiment=experiment,
            history=history,
            components=components,
            feature_names=tuple(data["feature_names"]),
            target_name=data["target_name"],
            target_names=tuple(data.get("target_names", [data["target_name"]])),
            data_fingerprint=data["fingerprint"],
            device=state["device"],
            mlbasics_version=state["mlbasics_version"],
            weights=read_tensors(folder / "model.safetensors", contents["model.safetensors"]),
            optimizer_state=state["optimizer"],
            rng_state=state["rng"],
            state_tensors=read_tensors(folder / "state.safetensors", contents["state.safetensors"]),
            validation_history=validation_history,
            metric_history=metric_history,
            standardization=standardization,
            split=data.get("split") if isinstance(data.get("split"), dict) else None,
            callback_states=state.get("callbacks", []),
            classes=_classes(folder / "state.json", data.get("classes")),
        )

    def __repr__(self) -> str:
        """A few lines: which run, at which epoch, the losses and (when few) the weights."""
        from mlbasics.show import display

        return display.text(*display.checkpoint(self))

    def _repr_html_(self) -> str:
        from mlbasics.show import display

        return display.checkpoint_html(self)

    # -- the model ---------------------------------------------------------------------------

    def model(self, registry: Registry | None = None, *, force: bool = False) -> nn.Module:
        """The trained model, rebuilt through the registry from its recorded name and params, with
        the checkpoint's weights, on the CPU, in eval mode. Its plugin must be installed, and not
        older than the one that trained it (unless ``force``)."""
        registry = registry or default_registry()
        problems = provenance_problems(self, registry, kinds=("model",))
        refuse(problems, prefix=str(self.run), force=force, hint="--force uses it anyway")
        info = self.components["model"]
        spec, values = registry.resolve("model", info.name, info.params)
        with torch.random.fork_rng(devices=[]):  # the weights are overwritten; the global RNG stays put
            model = registry.instantiate(spec, values)
        if not isinstance(model, nn.Module):
            raise PluginError(
                f"model {info.name!r} from plugin {spec.plugin}: factory returned {type(model).__name__}"
            )
        self.load_weights(model)
        return model.eval()

    def predict(
        self,
        features: Any,
        registry: Registry | None = None,
        *,
        force: bool = False,
    ) -> Any:
        """The trained model's predictions for ``features``, on the CPU: a tensor (n, k) in the
        data's units, or for class labels the predicted class's name for each row (a list of
        strings); ``force`` as in :meth:`model`. ``features`` as :meth:`mlbasics.TrainResult.predict`
        takes them: rows (a tensor, a NumPy array, a nested list, a DataFrame), one row, or numbers
        for a model of one feature."""
        outputs = self._outputs(features, registry, force=force)
        if self.classes is None:
            return outputs
        from mlbasics.engine.classification import predicted

        return [self.classes[int(index)] for index in predicted(outputs)]

    def predict_proba(
        self,
        features: Any,
        registry: Registry | None = None,
        *,
        force: bool = False,
    ) -> torch.Tensor:
        """For a run on class labels: each class's probability for each row, (n, C) on the CPU,
        columns in the order of :attr:`classes`."""
        if self.classes is None:
            raise ValidationError(
                [f"{self.run}: predict_proba needs a run on class labels; this one's targets are real-valued"]
            )
        from mlbasics.engine.classification import probabilities

        return probabilities(self._outputs(features, registry, force=force))

    def _outputs(
        self,
        features: Any,
        registry: Registry | None,
        *,
        force: bool,
    ) -> torch.Tensor:
        x = prediction_rows(features, self.feature_names).cpu()
        model = self.model(registry, force=force)
        with torch.no_grad():
            if self.standardization is not None:  # scaled as in training, back in the data's units
                return self.standardization.predict(model, x)
            predictions: torch.Tensor = model(x)
        return predictions

    def load_weights(self, model: nn.Module, *, built: Component | None = None) -> None:
        """Copy the checkpoint's weights into ``model``, which must have exactly their names,
        shapes and dtypes. ``built`` is the model component as it is built now, for the message when
        it differs from the saved one (a forced resume with another model)."""
        expected = model.state_dict()
        problems = [f"{name} is missing" for name in expected if name not in self.weights]
        problems += [f"{name} is not part of the model" for name in self.weights if name not in expected]
        for name, want in expected.items():  # in the model's order: its first layer first
            tensor = self.weights.get(name)
            if tensor is not None and (tensor.shape != want.shape or tensor.dtype != want.dtype):
                problems.append(
                    f"{name} is {_describe(tensor)} in the checkpoint but {_describe(want)} in the model"
                )
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            saved = self.components["model"]
            if built is None or (built.name, built.params) == (saved.name, saved.params):
                which = f"model {saved.name!r}"
            elif built.name != saved.name:
                which = f"model {built.name!r} (the run was trained with {saved.name!r})"
            else:
                which = f"model {built.name!r} with {shown_params(built.params)} (the run was trained with {shown_params(saved.params)})"
            raise DataError(
                f"{self.folder / 'model.safetensors'}: the weights do not fit {which}: "
                f"{'; '.join(problems[:3])}{more}"
            )
        model.load_state_dict(self.weights)

    def load_optimizer(self, optimizer: torch.optim.Optimizer, *, hyperparameters: bool = True) -> None:
        """Restore the optimizer's state. With ``hyperparameters=False`` the optimizer keeps its own
        (new) settings such as ``lr`` and takes only the per-parameter state (momentum buffers)."""
        where = str(self.folder / "state.json")
        tensors = {
            name: tensor.clone() for name, tensor in self.state_tensors.items()
        }  # load_state_dict keeps them
        with _state_errors(where, "the optimizer state"):
            state = decode(self.optimizer_state, tensors, where)
        if not (isinstance(state, dict) and isinstance(state.get("param_groups"), list) and "state" in state):
            raise DataError(f"{where}: the optimizer state is malformed")
        if not hyperparameters:
            fresh = optimizer.state_dict()["param_groups"]
            if len(fresh) == len(state["param_groups"]):
                state["param_groups"] = [
                    {**saved, **{k: v for k, v in new.items() if k != "params"}}
                    for saved, new in zip(state["param_groups"], fresh, strict=True)
                ]
        try:
            optimizer.load_state_dict(state)
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise DataError(
                f"{where}: the optimizer state does not fit optimizer "
                f"{self.components['optimizer'].name!r} ({exc})"
            ) from None

    def load_callbacks(self, callbacks: Sequence[Callback], names: Sequence[str]) -> list[str]:
        """Give each of ``callbacks`` (the experiment's, named ``names``) back the state saved for
        the callback at its place with its name. Returns notes on saved states that found none
        (the experiment's callbacks changed); a state a callback refuses is a :class:`DataError`."""
        where = str(self.folder / "state.json")
        tensors = {name: tensor.clone() for name, tensor in self.state_tensors.items()}
        notes = []
        for index, entry in enumerate(self.callback_states):
            name = entry["name"]
            if index >= len(callbacks) or names[index] != name:
                notes.append(
                    f"the state of callback {name!r} was not restored: the experiment no longer has it there"
                )
                continue
            callback = callbacks[index]
            with _state_errors(where, f"the state of callback {name!r}"):
                state = decode(entry["state"], tensors, where)
            if not isinstance(state, dict):
                raise DataError(f"{where}: the state of callback {name!r} is malformed")
            try:
                callback.load_state_dict(state)
            except MlbasicsError:
                raise
            except Exception as exc:
                raise DataError(
                    f"{where}: the state of {named(callback)} does not fit it ({one_line(exc)})"
                ) from None
        return notes

    def restore_rng(self) -> list[str]:
        """Put the random generators back as they were; returns notes on what could not be."""
        where = str(self.folder / "state.json")
        with _state_errors(where, "the random state"):
            return restore_rng(self.rng_state, self.state_tensors, where)


def _classes(where: Path, value: object) -> tuple[str, ...] | None:
    """The class names state.json records, checked: a list of distinct strings, or absent."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) < 2
        or not all(isinstance(name, str) and name for name in value)
        or len(set(value)) != len(value)
    ):
        raise DataError(f"{where}: data.classes must be a list of two or more distinct class names")
    return tuple(value)


def locate(run: str | Path) -> Path:
    """The checkpoint folder of run folder ``run``."""
    folder = Path(run)
    check_names(run, what=f"{run}: cannot be a run folder")
    if not folder.exists():
        raise DataError(f"{run}: no such run folder")
    if not folder.is_dir():
        raise DataError(f"{run}: not a folder; a run folder is written by `mlbasics train --save`")
    for name in (CHECKPOINT, PREVIOUS):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"{run}: holds no checkpoint (no {CHECKPOINT}/ folder); write one with --save {run}")


def _describe(tensor: torch.Tensor) -> str:
    return f"{tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"


@contextlib.contextmanager
def _state_errors(where: str, what: str) -> Iterator[None]:
    """Reading state back with :mod:`mlbasics.runs._state`: its ``ValueError`` (which names the file)
    and a state nested too deeply to decode become a :class:`DataError`."""
    try:
        yield
    except ValueError as exc:
        raise DataError(str(exc)) from None
    except RecursionError:
        raise DataError(f"{where}: {what} is nested too deeply") from None

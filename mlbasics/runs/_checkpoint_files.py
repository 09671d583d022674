"""Reading the files of a checkpoint folder: each one checked for integrity (its SHA-256 in the
manifest) and for shape before anything uses it. Every problem is a :class:`mlbasics.DataError`
naming the file (and the line, where it has one). Nothing here unpickles or executes anything."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeGuard

import safetensors.torch
import torch

from mlbasics.core.specs import KINDS, MAX_NESTING, Kind
from mlbasics.engine.experiment import COMPONENT_KINDS, Experiment
from mlbasics.engine.setup import ComponentInfo
from mlbasics.errors import DataError

FORMAT: Final = "mlbasics-checkpoint"
FORMAT_VERSION: Final = 1
MANIFEST: Final = "manifest.json"
FILES: Final = ("experiment.toml", "history.csv", "model.safetensors", "state.safetensors", "state.json")
#: Written only by runs that have them (standardize); checked like the others when listed.
OPTIONAL_FILES: Final = ("standardization.safetensors",)
#: The first columns of history.csv; then, in a run with a validation part, ``validation_loss``,
#: and one column per metric value (``r2``, ``validation_r2``): each filled at the sync epochs.
HISTORY_HEADER: Final = ["epoch", "loss"]


def _text(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None


def read_json(path: Path, data: bytes) -> Any:
    text = _text(path, data)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{path}: nested too deeply") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: missing; the checkpoint is incomplete") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    data = _read_bytes(path)
    manifest = read_json(path, data)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not an mlbasics checkpoint manifest")
    version = manifest.get("format_version")
    if not _is_int(version) or version < 1:
        raise DataError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise DataError(
            f"{path}: written by a newer mlbasics (checkpoint format {version}; this one reads "
            f"format {FORMAT_VERSION}): upgrade mlbasics to read it"
        )
    if not _is_int(manifest.get("epoch")) or manifest["epoch"] < 0:
        raise DataError(f"{path}: epoch must be an integer >= 0, got {manifest.get('epoch')!r}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise DataError(f"{path}: 'files' must map file names to SHA-256 digests")
    missing = [name for name in FILES if name not in files]
    if missing:
        raise DataError(f"{path}: does not list {', '.join(missing)}")
    return manifest


def verified(folder: Path, name: str, manifest: dict[str, Any]) -> bytes:
    path = folder / name
    data = _read_bytes(path)
    if hashlib.sha256(data).hexdigest() != manifest["files"][name]:
        raise DataError(
            f"{path}: does not match its SHA-256 in {MANIFEST}; the file was changed or truncated "
            "after the checkpoint was written"
        )
    return data


def read_state(path: Path, data: bytes) -> dict[str, Any]:
    state = read_json(path, data)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DataError(f"{path}: not an mlbasics checkpoint state")
    checks: dict[str, Callable[[Any], bool]] = {
        "epoch": lambda v: _is_int(v) and v >= 0,
        "mlbasics_version": lambda v: isinstance(v, str),
        "device": lambda v: isinstance(v, str),
        "components": lambda v: isinstance(v, dict),
        "data": lambda v: (
            isinstance(v, dict)
            and _is_strings(v.get("feature_names"))
            and isinstance(v.get("target_name"), str)
            and ("target_names" not in v or _is_strings(v["target_names"]))
            and isinstance(v.get("fingerprint"), str)
        ),
        "rng": lambda v: isinstance(v, dict),
    }
    for key, check in checks.items():
        if not check(state.get(key)):
            raise DataError(f"{path}: {key!r} is missing or malformed")
    if "optimizer" not in state:
        raise DataError(f"{path}: 'optimizer' is missing")
    callbacks = state.get("callbacks", [])  # absent: no callback had state (or an older checkpoint)
    if not (
        isinstance(callbacks, list)
        and all(isinstance(c, dict) and isinstance(c.get("name"), str) and "state" in c for c in callbacks)
    ):
        raise DataError(f"{path}: 'callbacks' is malformed")
    return state


def read_components(path: Path, data: dict[str, Any], experiment: Experiment) -> dict[Kind, ComponentInfo]:
    components: dict[Kind, ComponentInfo] = {}
    for kind in COMPONENT_KINDS:
        info = _component_record(path, data.get(kind), kind)
        if info.name != getattr(experiment, kind).name:
            raise DataError(
                f"{path}: records {kind} {info.name!r}, but experiment.toml names "
                f"{getattr(experiment, kind).name!r}"
            )
        components[kind] = info
    return components


def _component_record(path: Path, entry: Any, what: str, *, depth: int = 0) -> ComponentInfo:
    """One component's record, with the records of the components it used (``uses``, absent in
    runs saved before they were recorded)."""
    uses = entry.get("uses", {}) if isinstance(entry, dict) else None
    if not (
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("params"), dict)
        and isinstance(entry.get("plugin"), str)
        and all(isinstance(entry.get(key), str | None) for key in ("distribution", "version", "kind"))
        and isinstance(uses, dict)
        and (depth == 0 or entry.get("kind") in KINDS)
        and depth < MAX_NESTING
    ):
        raise DataError(f"{path}: the record of the {what} is missing or malformed")
    return ComponentInfo(
        name=entry["name"],
        params=entry["params"],
        plugin=entry["plugin"],
        distribution=entry.get("distribution"),
        version=entry.get("version"),
        uses={
            str(param): _component_record(path, nested, f"{what}'s {param}", depth=depth + 1)
            for param, nested in uses.items()
        },
        kind=entry.get("kind"),
    )


def read_history(path: Path, data: bytes, epoch: int) -> list[float]:
    return read_histories(path, data, epoch)[0]


def read_histories(
    path: Path, data: bytes, epoch: int
) -> tuple[list[float], list[tuple[int, float]], dict[str, list[tuple[int, float]]]]:
    """The training loss of every epoch, the ``(epoch, validation loss)`` pairs and, by name, the
    ``(epoch, value)`` pairs of every metric column (``r2``, ``validation_r2``; none in files
    written before there were metrics)."""
    text = _text(path, data)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = rows[0] if rows else []
    extra = header[2:]
    if (
        header[:2] != HISTORY_HEADER
        or "" in extra
        or len(set(extra)) != len(extra)
        or {"epoch", "loss"} & set(extra)
    ):
        raise DataError(
            f"{path}, line 1: expected the header 'epoch,loss' (or 'epoch,loss,validation_loss', "
            "then a column per metric)"
        )
    history: list[float] = []
    columns: dict[str, list[tuple[int, float]]] = {name: [] for name in extra}
    for line, row in enumerate(rows[1:], start=2):
        expected = line - 1
        try:
            number, loss = int(row[0]), float(row[1])
            for name, cell in zip(extra, row[2:], strict=False):
                if cell != "":
                    columns[name].append((number, float(cell)))
        except (ValueError, IndexError):
            raise DataError(
                f"{path}, line {line}: expected {','.join(header)!r:.60}, got {','.join(row)!r:.60}"
            ) from None
        if number != expected or len(row) != len(header):
            raise DataError(f"{path}, line {line}: expected epoch {expected}, got {','.join(row)!r:.60}")
        history.append(loss)
    if len(history) != epoch:
        raise DataError(f"{path}: {len(history)} epochs, but the checkpoint is at epoch {epoch}")
    validation = columns.pop("validation_loss", [])
    return history, validation, columns


def read_experiment(path: Path, data: bytes) -> Experiment:
    text = _text(path, data)
    experiment = Experiment.from_toml(text, source=str(path))
    problems = experiment.problems()
    if problems:
        raise DataError(f"{path}: {problems[0]}")
    return experiment


def read_tensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own error types for every kind of damage
        raise DataError(f"{path}: not a valid safetensors file ({str(exc).splitlines()[0]})") from None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)

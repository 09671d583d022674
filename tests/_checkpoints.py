"""Damaging a saved checkpoint on purpose, for the tests of what loading one catches."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mlbasics.runs.checkpoints import CHECKPOINT, MANIFEST


def rewrite(run: Path, name: str, data: bytes, *, fix_checksum: bool) -> None:
    """Replace the file ``name`` of the run's checkpoint by ``data``. With ``fix_checksum``, also
    record its new SHA-256 in the manifest, as a careful forger would: the manifest then matches, so
    the content itself must be checked."""
    folder = run / CHECKPOINT
    (folder / name).write_bytes(data)
    if fix_checksum:
        manifest = json.loads((folder / MANIFEST).read_text())
        manifest["files"][name] = hashlib.sha256(data).hexdigest()
        (folder / MANIFEST).write_text(json.dumps(manifest))

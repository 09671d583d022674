"""``memory_map = true``: the CSV read once into a binary cache beside it, memory-mapped.

Every test runs with blocks of 4 MiB and of 7 bytes (``tiny_chunks``), so the path a file larger than
memory takes (many blocks, lines split across reads, the careful reader starting again from row 0)
runs here on a few lines."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mlbasics import DataError, Registry
from mlbasics.cli import main
from mlbasics.data import _csv, _csv_cache
from mlbasics.data import dataset as data
from mlbasics.data.dataset import Dataset, data_fingerprint

TABLE = "a,b,y1,y2\n" + "".join(f"{i * 0.5},{-i},{i * i},{1 - i}\n" for i in range(40))


@pytest.fixture(autouse=True, params=[None, 7], ids=["4MiB-blocks", "7-byte-blocks"])
def tiny_chunks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(data, "FINGERPRINT_ROWS", 3)  # hashed in many pieces too
    if request.param is None:
        yield
    else:
        with _csv.chunk_bytes(request.param):
            yield


def _write(tmp_path: Path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _caches(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    "text",
    [TABLE, TABLE.replace("a,b", '"a","b"').replace("\n1.0,", '\n"1.0",')],  # quoted: the careful reader
    ids=["plain", "quoted"],
)
@pytest.mark.parametrize("params", [{}, {"targets": ["y1", "y2"]}, {"features": ["b"], "target": "a"}])
def test_the_mapped_table_is_the_loaded_table_to_the_bit(
    registry: Registry, tmp_path: Path, text: str, params: dict[str, object]
) -> None:
    path = _write(tmp_path, text)
    loaded = registry.build("dataset", "csv", path=path, **params)
    mapped = registry.build("dataset", "csv", path=path, memory_map=True, **params)
    assert (loaded.memory_mapped, mapped.memory_mapped) == (False, True)
    assert mapped.features.numpy().tobytes() == loaded.features.numpy().tobytes()
    assert mapped.targets.numpy().tobytes() == loaded.targets.numpy().tobytes()
    assert (mapped.feature_names, mapped.target_names) == (loaded.feature_names, loaded.target_names)
    assert mapped.features.is_contiguous()
    assert mapped.targets.is_contiguous()
    assert data_fingerprint(mapped.features, mapped.targets) == data_fingerprint(
        loaded.features, loaded.targets
    )
    assert [Path(f.path).name for f in mapped.source_files] == ["data.csv"]
    assert len(_caches(tmp_path)) == 1  # the cache, and no temporary file left beside it


def test_the_cache_is_built_once_and_rebuilt_when_the_csv_changes(registry: Registry, tmp_path: Path) -> None:
    path = _write(tmp_path, TABLE)
    first = registry.build("dataset", "csv", path=path, memory_map=True)
    (cache,) = (tmp_path / name for name in _caches(tmp_path))
    built = cache.stat().st_mtime_ns
    registry.build("dataset", "csv", path=path, memory_map=True)
    assert cache.stat().st_mtime_ns == built  # reused
    Path(path).write_text(TABLE.replace("\n0.5,", "\n9.5,"))  # same size, new contents
    changed = registry.build("dataset", "csv", path=path, memory_map=True)
    assert changed.features[1, 0] == 9.5
    assert first.features[1, 0] == 0.5  # the old map still reads the old file (replaced, not overwritten)


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[:-4],  # truncated
        lambda raw: b"x" + raw[1:],  # not a cache
        lambda raw: raw[:30] + b"{" + raw[31:],  # a header that is not JSON
        lambda raw: raw.replace(b'"rows": 40', b'"rows": 41'),  # a header that does not fit the file
    ],
    ids=["truncated", "magic", "json", "rows"],
)
def test_a_corrupt_cache_is_rebuilt(registry: Registry, tmp_path: Path, damage: object) -> None:
    path = _write(tmp_path, TABLE)
    registry.build("dataset", "csv", path=path, memory_map=True)
    (cache,) = (tmp_path / name for name in _caches(tmp_path))
    assert callable(damage)
    cache.write_bytes(damage(cache.read_bytes()))
    again = registry.build("dataset", "csv", path=path, memory_map=True)
    assert (
        again.features.numpy().tobytes()
        == registry.build("dataset", "csv", path=path).features.numpy().tobytes()
    )


def test_a_changed_file_is_named_at_the_next_check(registry: Registry, tmp_path: Path) -> None:
    path = _write(tmp_path, TABLE)
    mapped = registry.build("dataset", "csv", path=path, memory_map=True)
    mapped.check_unchanged()
    registry.build("dataset", "csv", path=path).check_unchanged()  # data in memory: nothing to check
    with open(path, "a") as file:
        file.write("1,2,3,4\n")
    with pytest.raises(DataError, match=r"data\.csv: changed on disk since the data were loaded from it"):
        mapped.check_unchanged()
    Dataset(features=torch.zeros(2, 1), targets=torch.zeros(2, 1)).check_unchanged()
    reloaded = registry.build("dataset", "csv", path=path, memory_map=True)
    os.remove(path)
    with pytest.raises(DataError, match=r"data\.csv: cannot be read any more"):
        reloaded.check_unchanged()


def test_a_cache_rebuilt_by_another_process_does_not_disturb_a_run(
    registry: Registry, tmp_path: Path
) -> None:
    path = _write(tmp_path, TABLE)
    mapped = registry.build("dataset", "csv", path=path, memory_map=True)
    before = mapped.features.clone()
    (cache,) = (tmp_path / name for name in _caches(tmp_path))
    cache.unlink()  # as if another process found no cache and built its own
    registry.build("dataset", "csv", path=path, memory_map=True)
    mapped.check_unchanged()
    assert torch.equal(mapped.features, before)


def test_a_bad_cell_names_its_line_and_leaves_no_cache(registry: Registry, tmp_path: Path) -> None:
    path = _write(tmp_path, TABLE.replace("\n3.0,-6,", "\n3.0,six,"))
    with pytest.raises(DataError, match=r"data\.csv, line 8: column 'b' holds 'six', not a number"):
        registry.build("dataset", "csv", path=path, memory_map=True)
    assert _caches(tmp_path) == []


def test_training_on_a_mapped_csv_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, TABLE)
    toml = tmp_path / "run.toml"
    toml.write_text(
        # Mini-batches: a memory-mapped table is never trained on whole (no full batch, no lstsq).
        f'epochs = 1\nbatch_size = 2\n[dataset]\nname = "csv"\npath = "{path}"\nmemory_map = true\n'
        'targets = ["y1", "y2"]\n[model]\nname = "linear"\n[optimizer]\nname = "sgd"\nlr = 0.01\n'
    )
    assert main(["train", str(toml), "--quiet"]) == 0
    Path(path).write_text(TABLE.replace("\n2.0,", "\n2.0x,"))
    capsys.readouterr()
    assert main(["train", str(toml), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("data.csv, line 6: column 'a' holds '2.0x', not a number"), error
    assert len(error.splitlines()) == 1


def test_the_cache_key_depends_on_the_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, TABLE)
    assert _csv_cache.cache_path(path, ["a"], ["y1"]) != _csv_cache.cache_path(path, ["a"], ["y2"])
    assert _csv_cache.cache_path(path, ["a"], ["y1"]).parent == tmp_path

"""``merge_v2_checkpoints`` over URLs (rules F-MG-1, S-SI-5, S-OS-1 to S-OS-3).

Bundles written to S3 (a moto server on 127.0.0.1), merged there, give the bytes a
local merge of the same bundles gives; inputs and destination may be on either side.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import dtckpt
from dtckpt.errors import InvalidArgumentError, UnavailableError
from dtckpt.storage.fsspec_store import FsspecStore
from dtckpt.storage.objects import CLAIMS
from dtckpt.storage.urls import resolve

from ..s3server import object_names

FULL = np.arange(2 * 3 * 1000, dtype=np.float32).reshape(6, 1000)


def _write_part(prefix: str, i: int) -> None:
    """Part ``i`` of three: rows ``2i, 2i+1`` of ``w`` and a value of its own."""
    dtckpt.save_v2(
        prefix,
        ["w", f"only{i}"],
        [f"6 1000 {2 * i},2:-", ""],
        [FULL[2 * i : 2 * i + 2], np.array([i, i + 1], np.int64)],
    )


def _read(path: str) -> bytes:
    store, key = resolve(path)
    return store.read(key)


def _local_merge(tmp_path: pathlib.Path) -> dict[str, bytes]:
    """The files of the three parts merged on the local file system, by suffix."""
    parts = [str(tmp_path / "local" / f"tmp{i}" / "part") for i in range(3)]
    for i, part in enumerate(parts):
        _write_part(part, i)
    merged = str(tmp_path / "local" / "merged")
    dtckpt.merge_v2_checkpoints(parts, merged)
    return {
        name[len("merged") :]: (tmp_path / "local" / name).read_bytes()
        for name in os.listdir(tmp_path / "local")
    }


def _check(merged: str, expected: dict[str, bytes]) -> None:
    for suffix, data in expected.items():
        assert _read(merged + suffix) == data, suffix
    reader = dtckpt.load_checkpoint(merged)
    assert np.array_equal(reader.get_tensor("w"), FULL)
    assert [list(reader.get_tensor(f"only{i}")) for i in range(3)] == [[0, 1], [1, 2], [2, 3]]
    reader.close()


def test_a_merge_in_s3_writes_a_local_merges_bytes(s3_bucket: str, tmp_path: pathlib.Path) -> None:
    expected = _local_merge(tmp_path)
    assert sorted(expected) == [
        ".data-00000-of-00003",
        ".data-00001-of-00003",
        ".data-00002-of-00003",
        ".index",
    ]
    parts = [f"{s3_bucket}/tmp{i}/part" for i in range(3)]
    for i, part in enumerate(parts):
        _write_part(part, i)
    merged = f"{s3_bucket}/run/merged"
    dtckpt.merge_v2_checkpoints(parts, merged)
    _check(merged, expected)
    assert object_names(f"{s3_bucket}/run") == sorted(f"merged{s}" for s in expected)
    assert object_names(f"{s3_bucket}/run/{CLAIMS}") == []
    for i in range(3):  # moved: the inputs' objects are gone
        assert object_names(f"{s3_bucket}/tmp{i}") == []


@pytest.mark.parametrize("destination", ["s3", "local"])
def test_a_merge_of_local_and_s3_inputs(
    s3_bucket: str, tmp_path: pathlib.Path, destination: str
) -> None:
    expected = _local_merge(tmp_path)
    parts = [
        str(tmp_path / "mixed" / "tmp0" / "part"),
        f"{s3_bucket}/tmp1/part",
        str(tmp_path / "mixed" / "tmp2" / "part"),
    ]
    for i, part in enumerate(parts):
        _write_part(part, i)
    if destination == "s3":
        merged = f"{s3_bucket}/run/merged"
    else:
        merged = str(tmp_path / "out" / "merged")
    dtckpt.merge_v2_checkpoints(parts, merged)
    _check(merged, expected)
    assert object_names(f"{s3_bucket}/tmp1") == []
    assert not (tmp_path / "mixed").exists() or os.listdir(tmp_path / "mixed") == []
    if destination == "local":
        assert sorted(os.listdir(tmp_path / "out")) == sorted(f"merged{s}" for s in expected)


def test_a_merge_whose_commit_fails_leaves_its_inputs(
    s3_bucket: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = [f"{s3_bucket}/tmp{i}/part" for i in range(3)]
    for i, part in enumerate(parts):
        _write_part(part, i)
    before = {part: object_names(part.rpartition("/")[0]) for part in parts}
    create = FsspecStore.create_if_absent

    def failing(self: FsspecStore, key: str, data: bytes) -> None:
        if key.endswith(".index"):
            raise UnavailableError("injected: the server went away", path=self.url(key))
        create(self, key, data)

    monkeypatch.setattr(FsspecStore, "create_if_absent", failing)
    with pytest.raises(UnavailableError, match="injected"):
        dtckpt.merge_v2_checkpoints(parts, f"{s3_bucket}/run/merged")
    monkeypatch.setattr(FsspecStore, "create_if_absent", create)
    assert {part: object_names(part.rpartition("/")[0]) for part in parts} == before
    assert object_names(f"{s3_bucket}/run") == []  # the copies were removed with the claim
    assert object_names(f"{s3_bucket}/run/{CLAIMS}") == []
    # The inputs still merge.
    dtckpt.merge_v2_checkpoints(parts, f"{s3_bucket}/run/merged")
    _check(f"{s3_bucket}/run/merged", _local_merge(tmp_path))


def test_missing_inputs_in_a_store(s3_bucket: str) -> None:
    _write_part(f"{s3_bucket}/tmp0/part", 0)
    inputs = [f"{s3_bucket}/tmp0/part", f"{s3_bucket}/nothing/part"]
    with pytest.raises(InvalidArgumentError, match="nothing/part.index does not exist"):
        dtckpt.merge_v2_checkpoints(inputs, f"{s3_bucket}/m")
    assert object_names(f"{s3_bucket}/tmp0") == ["part.data-00000-of-00001", "part.index"]
    assert object_names(s3_bucket) == []
    dtckpt.merge_v2_checkpoints(inputs, f"{s3_bucket}/m", allow_missing_files=True)
    assert object_names(s3_bucket) == ["m.data-00000-of-00001", "m.index"]
    reader = dtckpt.load_checkpoint(f"{s3_bucket}/m")
    assert list(reader.get_tensor("only0")) == [0, 1]
    reader.close()

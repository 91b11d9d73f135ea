"""Checkpoints read straight from an archive equal the same checkpoints read from their
files (rules A-RD-1 to A-RD-4), however the files were cut into frames."""

from __future__ import annotations

import os
import pathlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt.archive import ArchiveReader, members, pack
from dtckpt.checkpoint.reader import open_bundle, resolve_checkpoint_path
from dtckpt.errors import InvalidArgumentError, NotFoundError, OutOfRangeError
from dtckpt.format.messages import TensorSlice
from tests.archive.helpers import save_model
from tests.conftest import GOLDEN, Golden, assert_same_array


@pytest.fixture(params=[None, 256], ids=["4MiB-frames", "256B-frames"])
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int | None:
    """Pack with the real chunk size, and with tiny frames so that tensors span many."""
    if request.param is not None:
        monkeypatch.setattr(members, "CHUNK", request.param)
        monkeypatch.setattr(members, "SMALL_REGION", 64)
    return request.param  # type: ignore[no-any-return]


def _compare(files_prefix: str, archive_path: str) -> None:
    ours = dtckpt.load_checkpoint(archive_path)
    theirs = dtckpt.load_checkpoint(files_prefix)
    assert ours.get_variable_to_shape_map() == theirs.get_variable_to_shape_map()
    assert ours.get_variable_to_dtype_map() == theirs.get_variable_to_dtype_map()
    for key in theirs.get_variable_to_shape_map():
        assert_same_array(ours.get_tensor(key), theirs.get_tensor(key), key)
    assert ours.bundle.raw_keys() == theirs.bundle.raw_keys()
    for shard in range(theirs.bundle.num_shards):
        size = theirs.bundle.shard_size(shard)
        assert ours.bundle.shard_size(shard) == size
        a, b = np.empty(size, np.uint8), np.empty(size, np.uint8)
        ours.bundle.read_shard_into(shard, 0, a)
        theirs.bundle.read_shard_into(shard, 0, b)
        assert a.tobytes() == b.tobytes()
    ours.close()
    theirs.close()


def test_every_golden_reads_the_same(
    golden: Golden, chunk: int | None, tmp_path: pathlib.Path
) -> None:
    archive = str(tmp_path / "g.dtar")
    pack(golden.prefix, archive)
    _compare(golden.prefix, archive)
    with dtckpt.load_checkpoint(archive) as reader:
        for key, expected in golden.expected().items():
            assert_same_array(reader.get_tensor(key), expected, key)


def test_golden_directories_resolve_like_directories(tmp_path: pathlib.Path) -> None:
    """Rule A-RD-2: the state file's latest checkpoint, a SavedModel's variables, the only
    bundle; ``::MEMBER`` and ``member=`` pick another."""
    cases = {
        "og_manager": "ckpt-3",
        "dt_2x4_save": "ckpt-1",
        "og_savedmodel": "saved/variables/variables",
        "multi_shard": "ckpt",
    }
    for name, inner in cases.items():
        archive = str(tmp_path / f"{name}.dtar")
        pack(str(GOLDEN / name), archive)
        reader = dtckpt.load_checkpoint(archive)
        assert reader.prefix == f"{archive}::{inner}"
        assert resolve_checkpoint_path(archive) == reader.prefix
        _compare(str(GOLDEN / name / inner), reader.prefix)
    archive = str(tmp_path / "og_manager.dtar")
    assert dtckpt.load_checkpoint(archive, member="ckpt-2").prefix == archive + "::ckpt-2"
    assert dtckpt.load_checkpoint(archive + "::./ckpt-2").prefix == archive + "::ckpt-2"
    assert dtckpt.list_variables(archive + "::ckpt-2") == dtckpt.list_variables(
        str(GOLDEN / "og_manager" / "ckpt-2")
    )
    saved = str(tmp_path / "og_savedmodel.dtar")
    assert dtckpt.load_checkpoint(saved + "::saved").prefix == saved + "::saved/variables/variables"


def test_resolution_errors(tmp_path: pathlib.Path) -> None:
    archive = str(tmp_path / "m.dtar")
    pack(str(GOLDEN / "og_manager"), archive)
    with pytest.raises(NotFoundError, match=r"no checkpoint 'ckpt-9'.*'ckpt-2', 'ckpt-3'"):
        dtckpt.load_checkpoint(archive, member="ckpt-9")
    with pytest.raises(InvalidArgumentError, match="outside the archive"):
        dtckpt.load_checkpoint(archive, member="../ckpt-2")
    with pytest.raises(InvalidArgumentError, match="member= needs"):
        dtckpt.load_checkpoint(str(GOLDEN / "og_manager"), member="ckpt-2")
    src = tmp_path / "two"
    src.mkdir()
    save_model(src, "a")
    save_model(src, "b")
    pack(str(src), str(tmp_path / "two.dtar"))
    with pytest.raises(NotFoundError, match=r"no single checkpoint.*\['a', 'b'\]"):
        dtckpt.load_checkpoint(str(tmp_path / "two.dtar"))
    assert dtckpt.load_checkpoint(str(tmp_path / "two.dtar"), member="b").prefix.endswith("::b")


def test_absolute_state_paths_and_stale_state(tmp_path: pathlib.Path) -> None:
    src = tmp_path / "train"
    src.mkdir()
    save_model(src, "ckpt-1")
    save_model(src, "ckpt-2", seed=1)
    (src / "checkpoint").write_text('model_checkpoint_path: "/old/place/train/ckpt-1"\n')
    pack(str(src), str(tmp_path / "t.dtar"))
    assert dtckpt.load_checkpoint(str(tmp_path / "t.dtar")).prefix.endswith("::ckpt-1")
    (src / "checkpoint").write_text('model_checkpoint_path: "ckpt-7"\n')
    pack(str(src), str(tmp_path / "stale.dtar"))
    with pytest.raises(NotFoundError, match="no single checkpoint"):
        dtckpt.load_checkpoint(str(tmp_path / "stale.dtar"))


def test_saved_model_directories_on_disk() -> None:
    """``resolve_checkpoint_path`` takes a SavedModel directory to its variables."""
    saved = GOLDEN / "og_savedmodel" / "saved"
    assert resolve_checkpoint_path(str(saved)) == str(saved / "variables" / "variables")
    assert dtckpt.list_variables(str(saved)) == dtckpt.list_variables(
        str(saved / "variables" / "variables")
    )


def test_slices_read_from_archives(chunk: int | None, tmp_path: pathlib.Path) -> None:
    """Partial reads of stored slices (rule F-RD-6) go through the archive's frames too."""
    for name in ("partitioned_tf1", "sliced_savev2", "dt_2x4_write"):
        archive = str(tmp_path / f"{name}.dtar")
        golden_prefix = os.path.join(GOLDEN, name, "ckpt")
        pack(golden_prefix, archive)
        ours, theirs = open_bundle(archive), open_bundle(golden_prefix)
        for key in theirs.keys():
            shape = theirs.entry(key).shape
            if not shape or theirs.dtype_info(key).is_string:
                continue
            box = TensorSlice(tuple((d // 3, d - d // 3 - d // 4) for d in shape))
            assert_same_array(ours.read_slice(key, box), theirs.read_slice(key, box), key)
        ours.close()
        theirs.close()


def test_mmap_gives_read_only_arrays(tmp_path: pathlib.Path) -> None:
    prefix = save_model(tmp_path)
    pack(prefix, str(tmp_path / "a.dtar"))
    ours = dtckpt.load_checkpoint(str(tmp_path / "a.dtar"), mmap=True)
    theirs = dtckpt.load_checkpoint(prefix, mmap=True)
    for key in ("dense/kernel", "embed", "step"):
        got = ours.get_tensor(key)
        assert not got.flags.writeable
        assert_same_array(got, theirs.get_tensor(key), key)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_member_ranges(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, data: st.DataObject
) -> None:
    """Rule A-RD-1: any byte range of a member, cut from any mix of whole and partial frames."""
    root = tmp_path_factory.mktemp("ranges")
    content = data.draw(st.binary(min_size=1, max_size=2000))
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "checkpoint").write_bytes(content)
    monkeypatch.setattr(members, "CHUNK", data.draw(st.sampled_from([1, 7, 64, 4096])))
    pack(str(root / "src"), str(root / "a.dtar"))
    with ArchiveReader(str(root / "a.dtar")) as reader:
        for _ in range(5):
            start = data.draw(st.integers(0, len(content)))
            stop = data.draw(st.integers(start, len(content)))
            out = np.empty(stop - start, np.uint8)
            reader.read_into("checkpoint", start, out)
            assert out.tobytes() == content[start:stop]
        with pytest.raises(OutOfRangeError, match="holds"):
            reader.read_into("checkpoint", len(content), np.empty(1, np.uint8))
        with pytest.raises(NotFoundError, match="no member 'nope'"):
            reader.read_member("nope")


def test_threads_share_one_archive_reader(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(members, "CHUNK", 4096)
    prefix = save_model(tmp_path)
    pack(prefix, str(tmp_path / "a.dtar"))
    ours = open_bundle(str(tmp_path / "a.dtar"))
    theirs = open_bundle(prefix)
    boxes = [TensorSlice(((r, 7), (0, 512))) for r in range(0, 500, 7)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda b: ours.read_slice("dense/kernel", b), boxes))
    for box, value in zip(boxes, got, strict=True):
        assert_same_array(value, theirs.read_slice("dense/kernel", box))


def test_restore_through_checkpoint_reader(tmp_path: pathlib.Path) -> None:
    """An object-graph checkpoint read from an archive restores the same values."""
    module = dtckpt.Module()
    module.w = dtckpt.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="w")
    path = dtckpt.Checkpoint(model=module).save(str(tmp_path / "train" / "ckpt"))
    pack(str(tmp_path / "train"), str(tmp_path / "t.dtar"))
    reader = dtckpt.CheckpointReader(str(tmp_path / "t.dtar"))
    assert reader.prefix == f"{tmp_path / 't.dtar'}::{os.path.basename(path)}"
    assert_same_array(
        reader.get_tensor("model/w/.ATTRIBUTES/VARIABLE_VALUE"), module.w.numpy(), "w"
    )

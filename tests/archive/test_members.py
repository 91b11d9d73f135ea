"""What pack takes from a path (rule A-PK-1) and where it cuts files into frames (A-PK-2,
A-FR-4)."""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt.archive import members
from dtckpt.archive.layout import FILTER_NONE, FILTER_SHUFFLE
from dtckpt.archive.members import PlannedFrame, collect_members, plan_frames
from dtckpt.dtypes import DataType
from dtckpt.errors import InvalidArgumentError, NotFoundError
from tests.archive.helpers import save_model
from tests.conftest import GOLDEN


@st.composite
def layouts(draw: st.DrawFn) -> tuple[int, list[tuple[int, int, int]], int]:
    """A file with tensors (some overlapping or out of range, as a forged index may say)."""
    chunk = draw(st.sampled_from([16, 64, 256]))
    regions, pos = [], 0
    for _ in range(draw(st.integers(0, 12))):
        pos += draw(st.integers(0, 20))
        length = draw(st.integers(1, 3 * chunk))
        regions.append((pos, length, draw(st.sampled_from([0, 2, 4, 8]))))
        pos += length
    junk = draw(
        st.lists(
            st.tuples(st.integers(0, pos + 10), st.integers(0, 50), st.sampled_from([0, 4])),
            max_size=3,
        )
    )
    size = pos + draw(st.integers(0, 30))
    return size, regions + junk, chunk


@settings(max_examples=300, deadline=None)
@given(case=layouts())
def test_frames_tile_the_file(case: tuple[int, list[tuple[int, int, int]], int]) -> None:
    size, regions, chunk = case
    frames = plan_frames(size, regions, chunk)
    assert sum(f.length for f in frames) == size
    position = 0
    for frame in frames:
        assert frame.offset == position and 1 <= frame.length <= chunk
        assert (frame.filter_id, frame.element_size == 0) in (
            (FILTER_NONE, True),
            (FILTER_SHUFFLE, False),
        )
        position += frame.length


def test_large_tensors_get_their_own_frames() -> None:
    # a 10-byte string, a float32 tensor of 2.5 chunks, an int64 scalar, a small float32
    regions = [(0, 10, 0), (10, 640, 4), (650, 8, 0), (658, 40, 4)]
    frames = plan_frames(698, regions, chunk=256)
    assert frames == [
        PlannedFrame(0, 10, FILTER_NONE, 0),
        PlannedFrame(10, 256, FILTER_SHUFFLE, 4),
        PlannedFrame(266, 256, FILTER_SHUFFLE, 4),
        PlannedFrame(522, 128, FILTER_SHUFFLE, 4),
        PlannedFrame(650, 48, FILTER_SHUFFLE, 4),
    ]


def test_filter_changes_cut_sizeable_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(members, "SMALL_REGION", 32)
    regions = [(0, 64, 4), (64, 64, 2), (128, 8, 0), (136, 4, 2)]
    frames = plan_frames(140, regions, chunk=1024)
    assert [(f.offset, f.length, f.element_size) for f in frames] == [(0, 64, 4), (64, 76, 2)]


def test_element_sizes() -> None:
    """Rule A-FR-4: floats by their width, complex numbers by their parts, the rest none."""
    assert members.element_size(DataType.DT_FLOAT) == 4
    assert members.element_size(DataType.DT_BFLOAT16) == 2
    assert members.element_size(DataType.DT_HALF) == 2
    assert members.element_size(DataType.DT_DOUBLE) == 8
    assert members.element_size(DataType.DT_COMPLEX64) == 4
    assert members.element_size(DataType.DT_COMPLEX128) == 8
    for other in (DataType.DT_INT32, DataType.DT_STRING, DataType.DT_FLOAT8_E4M3FN):
        assert members.element_size(other) == 0


def test_plan_follows_the_index(tmp_path: pathlib.Path) -> None:
    prefix = save_model(tmp_path)
    found = collect_members(prefix)
    sizes = [os.path.getsize(m.path) for m in found]
    plans = dict(
        zip([m.name for m in found], members.plan_member_frames(found, sizes), strict=True)
    )
    data = plans["ckpt.data-00000-of-00001"]
    reader = dtckpt.BundleReader(prefix)
    kernel = reader.entry("dense/kernel")
    # The 1 MiB kernel and its neighbours share one shuffled frame (4 MiB chunks).
    assert any(
        f.offset <= kernel.offset
        and kernel.offset + kernel.size <= f.offset + f.length
        and f.element_size == 4
        for f in data
    )
    assert plans["ckpt.index"] == [
        PlannedFrame(
            0, sizes[found.index(next(m for m in found if m.name == "ckpt.index"))], FILTER_NONE, 0
        )
    ]


def test_collect_prefix(tmp_path: pathlib.Path) -> None:
    prefix = save_model(tmp_path)
    save_model(tmp_path, "ckpt-other")
    (tmp_path / "notes.txt").write_text("x")
    names = [m.name for m in collect_members(prefix)]
    assert names == ["ckpt.data-00000-of-00001", "ckpt.index"]


def test_collect_prefix_missing_shard(tmp_path: pathlib.Path) -> None:
    shutil.copytree(GOLDEN / "multi_shard", tmp_path / "g")
    os.remove(tmp_path / "g" / "ckpt.data-00001-of-00003")
    with pytest.raises(NotFoundError, match="data file ckpt.data-00001-of-00003 is missing"):
        collect_members(str(tmp_path / "g" / "ckpt"))


def test_collect_directories() -> None:
    manager = [m.name for m in collect_members(str(GOLDEN / "og_manager"))]
    assert "checkpoint" in manager and "ckpt-2.index" in manager and "ckpt-3.index" in manager
    saved = [m.name for m in collect_members(str(GOLDEN / "og_savedmodel" / "saved"))]
    assert saved == [
        "saved_model.pb",
        "variables/variables.data-00000-of-00001",
        "variables/variables.index",
    ]


def test_collect_refuses_what_is_no_checkpoint(tmp_path: pathlib.Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.txt").write_text("x")
    with pytest.raises(NotFoundError, match="no checkpoint in this directory"):
        collect_members(str(tmp_path / "plain"))
    with pytest.raises(NotFoundError, match="no prefix with a .index"):
        collect_members(str(tmp_path / "nothing"))


def test_collect_excludes_the_archive_and_bad_names(tmp_path: pathlib.Path) -> None:
    save_model(tmp_path)
    (tmp_path / "out.dtar").write_bytes(b"x")
    names = [m.name for m in collect_members(str(tmp_path), exclude=[str(tmp_path / "out.dtar")])]
    assert "out.dtar" not in names and "ckpt.index" in names
    (tmp_path / "back\\slash").write_text("x")
    with pytest.raises(InvalidArgumentError, match="backslash"):
        collect_members(str(tmp_path))

"""pack then unpack gives back every file byte for byte (rules A-PK-*, A-UP-*), for every
TF-written golden, for random files, and refuses to overwrite or to write outside DIR."""

from __future__ import annotations

import filecmp
import os
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt.archive import ArchiveReader, is_archive, layout, members, pack, unpack
from dtckpt.archive.layout import FileRecord
from dtckpt.errors import (
    AlreadyExistsError,
    DataLossError,
    InvalidArgumentError,
    NotFoundError,
)
from tests.archive.helpers import assemble, files_under, frame_rows, save_model
from tests.conftest import Golden


class Recorder:
    """A Progress that remembers every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def start(self, total: int, label: str = "", unit: str = "B") -> None:
        self.calls.append(("start", (total, label, unit)))

    def advance(self, amount: int) -> None:
        self.calls.append(("advance", amount))

    def finish(self) -> None:
        self.calls.append(("finish", None))

    def advanced(self) -> int:
        return sum(int(v) for k, v in self.calls if k == "advance")  # type: ignore[call-overload]


def test_every_golden_directory_round_trips(golden: Golden, tmp_path: pathlib.Path) -> None:
    archive = str(tmp_path / "g.dtar")
    report = pack(str(golden.directory), archive)
    original = files_under(golden.directory)
    assert report.files == len(original)
    assert report.raw_bytes == sum(len(b) for b in original.values())
    assert report.packed_bytes == os.path.getsize(archive)
    assert report.ratio == report.raw_bytes / report.packed_bytes
    assert is_archive(archive)
    out = tmp_path / "out"
    result = unpack(archive, str(out))
    assert files_under(out) == original
    assert result.files == len(original) and result.bytes == report.raw_bytes
    indexes = [n for n in original if n.endswith(".index")]
    expected = str(out / indexes[0][: -len(".index")]) if len(indexes) == 1 else None
    assert result.prefix == expected


def test_every_golden_prefix_round_trips(golden: Golden, tmp_path: pathlib.Path) -> None:
    archive = str(tmp_path / "p.dtar")
    report = pack(golden.prefix, archive)
    result = unpack(archive, str(tmp_path / "out"))
    base = os.path.basename(golden.prefix)
    assert result.prefix == str(tmp_path / "out" / base)
    directory = os.path.dirname(golden.prefix)
    names = sorted(n for n in os.listdir(directory) if n.startswith(base + "."))
    assert sorted(os.listdir(tmp_path / "out")) == names and report.files == len(names)
    for name in names:
        assert filecmp.cmp(os.path.join(directory, name), tmp_path / "out" / name, shallow=False)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=st.dictionaries(
        st.sampled_from(["a", "b.bin", "sub/c", "sub/deeper/d", "é"]),
        st.binary(max_size=3000),
        min_size=1,
    ),
    chunk=st.sampled_from([16, 100, 4096]),
    level=st.sampled_from([-5, 1, 3, 9]),
)
def test_random_files_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, bytes],
    chunk: int,
    level: int,
) -> None:
    root = tmp_path_factory.mktemp("random")
    src = root / "src"
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    (src / "checkpoint").write_text('model_checkpoint_path: "x"\n')
    monkeypatch.setattr(members, "CHUNK", chunk)
    pack(str(src), str(root / "a.dtar"), level=level)
    with ArchiveReader(str(root / "a.dtar")) as reader:
        assert int(reader.frames["raw_length"].max(initial=0)) <= chunk
        reader.verify()
    unpack(str(root / "a.dtar"), str(root / "out"))
    assert files_under(root / "out") == files_under(src)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    dtype=st.sampled_from(["float32", "float64", "float16", "bfloat16", "complex64", "int32"]),
    shape=st.lists(st.integers(0, 40), max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_tensors_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    dtype: str,
    shape: list[int],
    seed: int,
) -> None:
    root = tmp_path_factory.mktemp("tensors")
    rng = np.random.default_rng(seed)
    value = rng.standard_normal(shape).astype("float32").astype(dtype)
    dtckpt.save_v2(str(root / "ck"), ["t", "n"], ["", ""], [value, np.int64(seed)])
    monkeypatch.setattr(members, "CHUNK", 64)
    pack(str(root / "ck"), str(root / "t.dtar"))
    got = dtckpt.load_checkpoint(str(root / "t.dtar")).get_tensor("t")
    assert got.dtype == value.dtype and got.tobytes() == value.tobytes()
    unpack(str(root / "t.dtar"), str(root / "out"))
    assert files_under(root / "out") == {
        n: b for n, b in files_under(root).items() if n.startswith("ck.")
    }


def test_progress_and_archive_inside_the_packed_directory(tmp_path: pathlib.Path) -> None:
    save_model(tmp_path)
    before = files_under(tmp_path)
    progress = Recorder()
    archive = tmp_path / "inside.dtar"
    report = pack(str(tmp_path), str(archive), progress=progress)
    assert progress.calls[0] == ("start", (report.raw_bytes, "pack", "B"))
    assert progress.calls[-1] == ("finish", None)
    assert progress.advanced() == report.raw_bytes
    assert sorted(os.listdir(tmp_path)) == sorted([*before, "inside.dtar"])  # no temporary left
    progress = Recorder()
    unpack(str(archive), str(tmp_path / "out"), progress=progress)
    assert progress.advanced() == report.raw_bytes
    assert files_under(tmp_path / "out") == before


def test_unpack_refuses_to_overwrite(tmp_path: pathlib.Path) -> None:
    (tmp_path / "src").mkdir()
    prefix = save_model(tmp_path / "src")
    pack(prefix, str(tmp_path / "a.dtar"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "ckpt.index").write_bytes(b"old")
    with pytest.raises(AlreadyExistsError, match="overwrite=True") as info:
        unpack(str(tmp_path / "a.dtar"), str(out))
    assert info.value.path == str(out / "ckpt.index")
    assert sorted(os.listdir(out)) == ["ckpt.index"]  # nothing was written
    unpack(str(tmp_path / "a.dtar"), str(out), overwrite=True)
    assert files_under(out) == files_under(tmp_path / "src")
    (out / "ckpt.data-00000-of-00001").unlink()
    (out / "ckpt.data-00000-of-00001").mkdir()
    with pytest.raises(AlreadyExistsError, match="replace a directory"):
        unpack(str(tmp_path / "a.dtar"), str(out), overwrite=True)


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "a/../../b", "ok/./x"])
def test_unpack_refuses_names_that_escape(tmp_path: pathlib.Path, name: str) -> None:
    frame = _stored_frame(b"evil")
    toc = layout.encode_toc(
        [FileRecord(name, 4, frame[1])], frame_rows([(0, 0, 4, 16, len(frame[0]), frame[1], 0, 0)])
    )
    archive = tmp_path / "evil.dtar"
    archive.write_bytes(assemble([frame[0]], toc))
    with pytest.raises(DataLossError, match="member name") as info:
        unpack(str(archive), str(tmp_path / "out"))
    assert info.value.path == str(archive) and info.value.offset is not None
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape").exists()


def test_unpack_refuses_links_out_of_the_directory(tmp_path: pathlib.Path) -> None:
    src = tmp_path / "src"
    (src / "variables").mkdir(parents=True)
    save_model(src / "variables", "variables")
    (src / "saved_model.pb").write_bytes(b"\x08\x01")
    pack(str(src), str(tmp_path / "sm.dtar"))
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "variables")
    with pytest.raises(InvalidArgumentError, match="through a link"):
        unpack(str(tmp_path / "sm.dtar"), str(out))
    assert os.listdir(elsewhere) == []


def _stored_frame(data: bytes) -> tuple[bytes, int]:
    from dtckpt.archive.frames import compressor
    from dtckpt.format.crc import crc32c

    return compressor(3).compress(data), crc32c(data)


def test_pack_is_atomic(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = save_model(tmp_path)
    archive = tmp_path / "a.dtar"
    archive.write_bytes(b"previous archive")
    from dtckpt.archive import writer

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(writer, "encode_toc", broken)
    with pytest.raises(OSError, match="disk full"):
        pack(prefix, str(archive))
    assert archive.read_bytes() == b"previous archive"
    assert sorted(os.listdir(tmp_path)) == ["a.dtar", "ckpt.data-00000-of-00001", "ckpt.index"]


def test_pack_arguments(tmp_path: pathlib.Path) -> None:
    prefix = save_model(tmp_path)
    for level in (23, -(1 << 17) - 1, 2.0, True):
        with pytest.raises(InvalidArgumentError, match="zstd level"):
            pack(prefix, str(tmp_path / "a.dtar"), level=level)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="is a directory"):
        pack(prefix, str(tmp_path))
    with pytest.raises(NotFoundError, match="directory does not exist"):
        pack(prefix, str(tmp_path / "no" / "a.dtar"))
    with pytest.raises(NotFoundError, match="no checkpoint"):
        pack(str(tmp_path / "missing"), str(tmp_path / "a.dtar"))
    assert not is_archive(str(tmp_path)) and not is_archive(str(tmp_path / "missing"))
    assert not is_archive(prefix + ".index")


def test_empty_files_and_large_frames(tmp_path: pathlib.Path) -> None:
    """Empty members have no frames; a 9 MiB file of zeros becomes three frames."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "checkpoint").write_bytes(b"")
    (src / "zeros").write_bytes(bytes(9 << 20))
    report = pack(str(src), str(tmp_path / "a.dtar"), level=1)
    assert report.ratio > 100
    with ArchiveReader(str(tmp_path / "a.dtar")) as reader:
        assert reader.member("checkpoint").first_frame == reader.member("checkpoint").end_frame
        assert reader.frames["raw_length"].tolist() == [4 << 20, 4 << 20, 1 << 20]
    unpack(str(tmp_path / "a.dtar"), str(tmp_path / "out"))
    assert files_under(tmp_path / "out") == files_under(src)


def test_pack_without_shuffle(tmp_path: pathlib.Path) -> None:
    """``shuffle=False`` cuts the same frames and filters none (rule A-FR-4)."""
    prefix = save_model(tmp_path)
    with_shuffle = pack(prefix, str(tmp_path / "s.dtar"))
    without = pack(prefix, str(tmp_path / "p.dtar"), shuffle=False)
    with ArchiveReader(str(tmp_path / "s.dtar")) as a, ArchiveReader(str(tmp_path / "p.dtar")) as b:
        assert set(a.frames["filter"].tolist()) == {0, 1}
        assert set(b.frames["filter"].tolist()) == {0}
        assert a.frames["raw_length"].tolist() == b.frames["raw_length"].tolist()
    assert with_shuffle.packed_bytes < without.packed_bytes
    unpack(str(tmp_path / "p.dtar"), str(tmp_path / "out"))
    assert files_under(tmp_path / "out") == {
        n: d for n, d in files_under(tmp_path).items() if n.startswith("ckpt.")
    }


def test_is_archive_never_opens_special_files(tmp_path: pathlib.Path) -> None:
    """Rule A-RD-4: a FIFO named like a checkpoint is not opened (opening it would block)."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "fifo")
    assert not is_archive(str(tmp_path / "fifo"))
    with pytest.raises(NotFoundError):
        dtckpt.load_checkpoint(str(tmp_path / "fifo"))


# -- rule S-TP-5: temporaries of killed packs and conversions ----------------------------------


def _held(path: pathlib.Path) -> int:
    """A temporary as a live writer holds it: created and flocked."""
    import fcntl

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    os.write(fd, b"a live writer's bytes")
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_killed_packs_temporary_is_removed_and_never_packed(tmp_path: pathlib.Path) -> None:
    save_model(tmp_path)
    stale = tmp_path / ".model.dtar.tmp0123456789abcdef"
    stale.write_bytes(b"half an archive")
    other = tmp_path / ".other.dtar.tmp0123456789abcdef"
    other.write_bytes(b"another output's")
    live = tmp_path / ".model.dtar.tmpfedcba9876543210"
    fd = _held(live)
    try:
        pack(str(tmp_path), str(tmp_path / "model.dtar"))
    finally:
        os.close(fd)
    assert not stale.exists()  # the killed pack's, removed
    assert live.exists() and other.exists()  # a live writer's, and another output's
    with ArchiveReader(str(tmp_path / "model.dtar")) as reader:
        assert not [n for n in reader.names() if ".tmp" in n]  # no temporary was packed


def test_a_killed_conversions_temporaries_are_removed(tmp_path: pathlib.Path) -> None:
    prefix = save_model(tmp_path / "src")
    for suffix in (".npz", ".safetensors"):
        stale = tmp_path / f".x{suffix}.tmp00000000deadbeef"
        stale.write_bytes(b"half a file")
        dtckpt.interop.convert(prefix, str(tmp_path / f"x{suffix}"), skip_unsupported=True)
        assert not stale.exists() and (tmp_path / f"x{suffix}").is_file()
    stale = tmp_path / "y.data-00000-of-00001.tempstate123"
    stale.write_bytes(b"half a data file")
    dtckpt.interop.convert(str(tmp_path / "x.npz"), str(tmp_path / "y"))
    assert not stale.exists()
    assert dtckpt.list_variables(str(tmp_path / "y"))

""".npz archives: written by NumPy itself, read by NumPy, and dtckpt's own choices."""

from __future__ import annotations

import json
import pathlib
import struct
import zipfile

import ml_dtypes
import numpy as np
import pytest

import dtckpt
from dtckpt.errors import InvalidArgumentError, UnimplementedError
from dtckpt.interop import convert, npz_io, read_npz, write_npz
from dtckpt.interop.npz_io import METADATA_MEMBER
from tests.conftest import assert_same_array

from .conftest import object_array

VALUES = {
    "model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE": np.arange(12, dtype=np.float32).reshape(3, 4),
    "f16": np.array([1.5, -0.0, np.inf], dtype=np.float16),
    "f64": np.array(np.pi),
    "i8": np.array([-128, 127], dtype=np.int8),
    "u64": np.array([2**64 - 1], dtype=np.uint64),
    "b": np.array([[True, False]]),
    "c64": np.array([1 + 2j], dtype=np.complex64),
    "c128": np.array([[1 - 2j, 3j]], dtype=np.complex128),
    "empty": np.zeros((0, 3), dtype=np.int32),
    "ends.npy": np.ones(2, dtype=np.uint16),
}


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_archives_numpy_writes_become_checkpoints(
    tmp_path: pathlib.Path, small_chunks: int, save: object
) -> None:
    path = str(tmp_path / "numpy.npz")
    save(path, **VALUES)  # type: ignore[operator]
    report = convert(path, str(tmp_path / "ckpt"))
    assert (report.tensors, report.source_format) == (len(VALUES), "npz")
    with dtckpt.load_checkpoint(str(tmp_path / "ckpt")) as reader:
        assert sorted(reader.get_variable_to_shape_map()) == sorted(VALUES)
        for key, value in VALUES.items():
            assert_same_array(reader.get_tensor(key), value, key)


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_fortran_order_big_endian_and_text_members(
    tmp_path: pathlib.Path, small_chunks: int, save: object
) -> None:
    grid = np.arange(60, dtype=np.float64).reshape(3, 4, 5)
    members = {
        "fortran": np.asfortranarray(grid),
        "fortran_text": np.asfortranarray(np.array([[b"ab", b"c"], [b"", b"def"]])),
        "big": np.arange(10, dtype=">i4"),
        "big_complex": np.array([1 + 2j, -3j], dtype=">c8"),
        "column": np.asfortranarray(np.arange(5.0).reshape(5, 1)),
        "bytes": np.array([b"a", b"bc"]),
        "unicode": np.array(["é", "✓x", ""]),
    }
    path = str(tmp_path / "odd.npz")
    save(path, **members)  # type: ignore[operator]
    with read_npz(path) as source:
        got = {stream.key: stream.read() for stream in source.tensors}
    assert_same_array(got["fortran"], grid)
    assert got["big"].dtype == np.int32 and got["big"].tolist() == list(range(10))
    assert got["big_complex"].dtype == np.complex64
    assert got["big_complex"].tolist() == [1 + 2j, -3j]
    assert got["column"].reshape(-1).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert got["fortran_text"].tolist() == [[b"ab", b"c"], [b"", b"def"]]
    assert got["bytes"].tolist() == [b"a", b"bc"]
    assert got["unicode"].tolist() == ["é".encode(), "✓x".encode(), b""]


def test_numpy_reads_what_dtckpt_writes(tmp_path: pathlib.Path, small_chunks: int) -> None:
    prefix = str(tmp_path / "ckpt")
    strings = object_array([b"a", b"nul\x00", b"", b"\x00"], (2, 2))
    plain = object_array([b"x", b"yz"], (2,))
    bf16 = np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16)
    dtckpt.save_v2(
        prefix,
        ["s", "p", "bf", "q", "w/x"],
        [""] * 5,
        [strings, plain, bf16, np.array([-3, 4], np.int8), np.eye(2)],
        [None, None, None, "qint8", None],
    )
    path = str(tmp_path / "x.npz")
    convert(prefix, path)
    with np.load(path) as archive:
        assert sorted(archive.files) == sorted(["s", "p", "bf", "q", "w/x", METADATA_MEMBER])
        assert archive["p"].tolist() == [b"x", b"yz"] and archive["p"].dtype == np.dtype("S2")
        assert archive["bf"].dtype == np.dtype("<u2")
        assert archive["bf"].tobytes() == bf16.tobytes()
        assert archive["q"].dtype == np.int8 and archive["w/x"].tolist() == [[1, 0], [0, 1]]
        metadata = json.loads(archive[METADATA_MEMBER])
    assert metadata == {
        "format": "dtckpt.npz",
        "version": 1,
        "dtypes": {"bf": "bfloat16", "q": "qint8"},
        "string_lengths": {"s": [1, 4, 0, 1]},
    }
    convert(path, str(tmp_path / "back"))
    with dtckpt.load_checkpoint(str(tmp_path / "back")) as reader:
        assert reader.get_tensor("s").tolist() == strings.tolist()  # trailing NULs kept
        assert reader.get_tensor("bf").dtype == ml_dtypes.bfloat16
        assert reader.bundle.dtype_info("q").name == "qint8"


def test_plain_archives_have_no_metadata_and_are_reproducible(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(prefix, ["a", "b"], ["", ""], [np.ones(3, np.float32), np.arange(4)])
    convert(prefix, str(tmp_path / "1.npz"))
    convert(prefix, str(tmp_path / "2.npz"))
    assert (tmp_path / "1.npz").read_bytes() == (tmp_path / "2.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "1.npz") as archive:
        assert archive.namelist() == ["a.npy", "b.npy"]
        assert {m.compress_type for m in archive.infolist()} == {zipfile.ZIP_STORED}
        assert {m.date_time for m in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_compressed_and_zip64_members(
    tmp_path: pathlib.Path, small_chunks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = str(tmp_path / "ckpt")
    value = np.arange(1000, dtype=np.int64).reshape(10, 100)
    dtckpt.save_v2(prefix, ["v"], [""], [value])
    write_npz(prefix, str(tmp_path / "z.npz"), compress=True)
    monkeypatch.setattr(npz_io, "ZIP64_THRESHOLD", 0)
    write_npz(prefix, str(tmp_path / "64.npz"))
    for name in ("z.npz", "64.npz"):
        with np.load(str(tmp_path / name)) as archive:
            assert np.array_equal(archive["v"], value)
        with read_npz(str(tmp_path / name)) as source:
            assert_same_array(source["v"].read(), value)
    with zipfile.ZipFile(tmp_path / "z.npz") as archive:
        member = archive.getinfo("v.npy")
        assert member.compress_type == zipfile.ZIP_DEFLATED
        assert member.compress_size < member.file_size
    with zipfile.ZipFile(tmp_path / "64.npz") as archive:
        offset = archive.getinfo("v.npy").header_offset
    raw = (tmp_path / "64.npz").read_bytes()
    name_length, extra_length = struct.unpack_from("<HH", raw, offset + 26)
    extra = raw[offset + 30 + name_length : offset + 30 + name_length + extra_length]
    assert extra.startswith(b"\x01\x00")  # the local header's ZIP64 field


def test_members_without_a_tensorflow_dtype(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "odd.npz")
    np.savez(
        path,
        ok=np.ones(2),
        obj=np.array([1, "a"], dtype=object),
        bf=np.ones(2, dtype=ml_dtypes.bfloat16),  # NumPy writes <V2: no way to tell
        when=np.array(["2020-01-01"], dtype="datetime64[D]"),
        ld=np.ones(2, dtype=np.longdouble),
    )
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("notes.txt", b"hello")
    with pytest.raises((UnimplementedError, InvalidArgumentError)) as error:
        convert(path, str(tmp_path / "ckpt"))
    assert error.value.path == path and error.value.key == "obj"  # the first, in order
    assert not (tmp_path / "ckpt.index").exists()
    report = convert(path, str(tmp_path / "ckpt"), skip_unsupported=True)
    assert report.skipped == ("bf", "ld", "notes.txt", "obj", "when")
    assert report.tensors == 1
    with read_npz(path) as source:
        reasons = {u.key: u.error.message for u in source.unsupported}
    assert "unpickling" in reasons["obj"] and "not a .npy" in reasons["notes.txt"]


@pytest.mark.parametrize(
    "key, match",
    [("a\x00b", "NUL"), ("\udcff", "UTF-8"), ("k" * 70000, "too long")],
)
def test_keys_an_archive_cannot_hold(tmp_path: pathlib.Path, key: str, match: str) -> None:
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(prefix, [key, "fine"], ["", ""], [np.ones(1), np.ones(1)])
    with pytest.raises(InvalidArgumentError, match=match) as error:
        convert(prefix, str(tmp_path / "x.npz"))
    assert error.value.key == key
    assert not (tmp_path / "x.npz").exists()

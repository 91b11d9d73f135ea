"""Damaged .npz and .safetensors inputs: typed errors naming the file and the key, no output."""

from __future__ import annotations

import io
import json
import os
import pathlib
import struct
import zipfile

import numpy as np
import pytest

from dtckpt.errors import (
    CheckpointError,
    DataLossError,
    NotFoundError,
    OutOfRangeError,
    UnimplementedError,
)
from dtckpt.interop import convert, read_npz, read_safetensors
from dtckpt.interop.npy_codec import encode_npy_header
from dtckpt.interop.npz_io import METADATA_MEMBER


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _zip(path: pathlib.Path, members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> str:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


def _convert_fails(
    path: str,
    tmp_path: pathlib.Path,
    error: type[CheckpointError],
    key: str | None,
    match: str | None = None,
    targets: tuple[str, ...] = ("out/ckpt", "out.safetensors", "out2.npz"),
) -> CheckpointError:
    for target in targets:
        with pytest.raises(error, match=match) as raised:
            convert(path, str(tmp_path / target))
        assert raised.value.path == path
        if key is not None:
            assert raised.value.key == key
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and str(p) != path]
    assert leftovers == []
    return raised.value


# -- .npz ----------------------------------------------------------------------------
def test_not_a_zip_and_missing_files(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(b"PK\x03\x04" + os.urandom(100))
    _convert_fails(str(path), tmp_path, DataLossError, None, "zip")
    with pytest.raises(NotFoundError):
        read_npz(str(tmp_path / "nope.npz"))


def test_truncated_archive(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.npz"
    np.savez(path, a=np.arange(100.0), b=np.ones(3))
    path.write_bytes(path.read_bytes()[:700])
    _convert_fails(str(path), tmp_path, DataLossError, None)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_flipped_member_byte_fails_the_member_crc(tmp_path: pathlib.Path, method: int) -> None:
    path = tmp_path / "f.npz"
    value = np.arange(1000, dtype=np.float64)
    _zip(path, {"first.npy": _npy(np.ones(2)), "w/x.npy": _npy(value)}, method)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo("w/x.npy")
    start = member.header_offset + 30 + len("w/x.npy")
    raw[start + member.compress_size - 5] ^= 0x10  # in the data, past the .npy header
    path.write_bytes(bytes(raw))
    error = _convert_fails(str(path), tmp_path, DataLossError, "w/x")
    assert "CRC" in error.message or "member" in error.message


def test_member_size_disagrees_with_its_header(tmp_path: pathlib.Path) -> None:
    short = _npy(np.arange(10.0))[:-8]
    path = _zip(tmp_path / "s.npz", {"ok.npy": _npy(np.ones(1)), "short.npy": short})
    _convert_fails(path, tmp_path, DataLossError, "short", "header describes")


def test_header_claiming_terabytes_allocates_nothing(tmp_path: pathlib.Path) -> None:
    huge = encode_npy_header("<f8", (2**20, 2**20, 2**20)) + bytes(64)
    path = _zip(tmp_path / "h.npz", {"huge.npy": huge}, zipfile.ZIP_DEFLATED)
    _convert_fails(path, tmp_path, DataLossError, "huge", "header describes")


@pytest.mark.parametrize(
    "data, error",
    [
        (b"\x93NUMPY\x01\x00\xff\xff{", DataLossError),  # HEADER_LEN past the member
        (b"not an npy array at all, really", DataLossError),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}    \n", DataLossError),
        (b"\x93NUMPY\x09\x00\x10\x00" + b" " * 16, UnimplementedError),
        (
            b"\x93NUMPY\x01\x00\x40\x00{'descr': 'x', 'fortran_order': False, 'shape': ()}"
            + b" " * 10
            + b"\n",
            DataLossError,
        ),
    ],
)
def test_bogus_member_headers(
    tmp_path: pathlib.Path, data: bytes, error: type[CheckpointError]
) -> None:
    path = _zip(tmp_path / "b.npz", {"bad.npy": data})
    _convert_fails(path, tmp_path, error, "bad")


def test_broken_deflate_stream(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "d.npz"
    _zip(path, {"v.npy": _npy(np.arange(5000, dtype=np.int64))}, zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo("v.npy")
    start = member.header_offset + 30 + len("v.npy")
    raw[start + member.compress_size // 2 : start + member.compress_size // 2 + 8] = b"\xff" * 8
    path.write_bytes(bytes(raw))
    _convert_fails(str(path), tmp_path, DataLossError, "v")


def test_member_named_twice(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "twice.npz"
    with pytest.warns(UserWarning):  # zipfile warns about the duplicate
        _zip(path, {"a.npy": _npy(np.ones(1))})
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("a.npy", _npy(np.zeros(1)))
    _convert_fails(str(path), tmp_path, DataLossError, "a.npy", "twice")


@pytest.mark.parametrize(
    "metadata, error, match",
    [
        (b"{not json", DataLossError, "not JSON"),
        (b'["a"]', DataLossError, "record"),
        (
            json.dumps({"format": "dtckpt.npz", "version": 7}).encode(),
            UnimplementedError,
            "version",
        ),
        (
            json.dumps({"format": "dtckpt.npz", "version": 1, "dtypes": {"v": 3}}).encode(),
            DataLossError,
            "dtype names",
        ),
        (
            json.dumps({"format": "dtckpt.npz", "version": 1, "dtypes": {"v": "float99"}}).encode(),
            DataLossError,
            "unknown dtype",
        ),
        (
            json.dumps({"format": "dtckpt.npz", "version": 1, "dtypes": {"v": "float32"}}).encode(),
            DataLossError,
            "cannot hold",
        ),
        (
            json.dumps(
                {"format": "dtckpt.npz", "version": 1, "string_lengths": {"v": [-1]}}
            ).encode(),
            DataLossError,
            "sizes",
        ),
    ],
)
def test_damaged_metadata(
    tmp_path: pathlib.Path, metadata: bytes, error: type[CheckpointError], match: str
) -> None:
    path = _zip(
        tmp_path / "m.npz", {"v.npy": _npy(np.ones(2, np.uint16)), METADATA_MEMBER: metadata}
    )
    with pytest.raises(error, match=match) as raised:
        read_npz(path)
    assert raised.value.path == path


def test_string_lengths_that_do_not_fit(tmp_path: pathlib.Path) -> None:
    metadata = json.dumps(
        {"format": "dtckpt.npz", "version": 1, "string_lengths": {"s": [1, 9]}}
    ).encode()
    path = _zip(
        tmp_path / "s.npz", {"s.npy": _npy(np.array([b"a", b"bc"])), METADATA_MEMBER: metadata}
    )
    _convert_fails(path, tmp_path, DataLossError, "s", "string_lengths", ("ckpt", "out.npz"))


# -- .safetensors --------------------------------------------------------------------
def _safetensors(path: pathlib.Path, header: object, data: bytes, length: int | None = None) -> str:
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body) if length is None else length) + body + data)
    return str(path)


GOOD = {
    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    "b": {"dtype": "I64", "shape": [], "data_offsets": [8, 16]},
}


@pytest.mark.parametrize(
    "header, data, length, key, match",
    [
        (GOOD, bytes(10), None, None, "cover 16 bytes"),  # truncated data
        (GOOD, bytes(16), 10**6, None, "runs past the end"),  # bogus header length
        (GOOD, bytes(16), 2**40, None, "exceeds the limit"),  # a header of a terabyte
        (
            {**GOOD, "b": {"dtype": "I64", "shape": [], "data_offsets": [8, 2**50]}},
            bytes(16),
            None,
            "b",
            "needs 8",
        ),
        (
            {**GOOD, "b": {"dtype": "I64", "shape": [], "data_offsets": [2**50, 2**50 + 8]}},
            bytes(16),
            None,
            "b",
            "hole",
        ),
        (
            {**GOOD, "b": {"dtype": "I64", "shape": [], "data_offsets": [4, 12]}},
            bytes(16),
            None,
            "b",
            "overlaps",
        ),
        (b'{"a": {"dtype": "F32", ', bytes(16), None, None, "not valid JSON"),
        (
            {**GOOD, "a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}},
            bytes(16),
            None,
            "a",
            "needs",
        ),
    ],
)
def test_hostile_safetensors_files(
    tmp_path: pathlib.Path,
    header: object,
    data: bytes,
    length: int | None,
    key: str | None,
    match: str,
) -> None:
    path = _safetensors(tmp_path / "h.safetensors", header, data, length)
    error = _convert_fails(path, tmp_path, DataLossError, key, match)
    assert error.offset in (0, 8)


def test_tiny_and_missing_safetensors_files(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"\x01\x00")
    _convert_fails(str(path), tmp_path, DataLossError, None, "8-byte")
    with pytest.raises(NotFoundError):
        read_safetensors(str(tmp_path / "nope.safetensors"))


def test_file_shrinking_after_the_header_was_checked(tmp_path: pathlib.Path) -> None:
    path = _safetensors(tmp_path / "s.safetensors", GOOD, bytes(16))
    with read_safetensors(path) as source:
        os.truncate(path, os.path.getsize(path) - 4)
        assert source["a"].read().tolist() == [0.0, 0.0]
        with pytest.raises(OutOfRangeError) as error:
            source["b"].read()
    assert (error.value.path, error.value.key) == (path, "b")

"""The .npy header codec: literal bytes, NumPy's own headers, damaged headers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtckpt.errors import DataLossError, UnimplementedError
from dtckpt.interop.npy_codec import (
    ARRAY_ALIGN,
    NpyHeader,
    decode_npy_header,
    decode_npy_preamble,
    encode_npy_header,
)

DESCRS = ["<f4", "<f8", "<f2", "|i1", "<i8", "|u1", "<u2", "<u8", "|b1", "<c8", "<c16", "|S7"]


def test_literal_header_of_a_float32_matrix() -> None:
    text = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
    expected = b"\x93NUMPY\x01\x00\x76\x00" + text + b" " * 58 + b"\n"
    assert encode_npy_header("<f4", (2, 3)) == expected
    assert decode_npy_header(expected) == NpyHeader("<f4", False, (2, 3), 128)


def test_scalar_and_vector_shapes_are_spelled_as_python_tuples() -> None:
    assert b"'shape': (), }" in encode_npy_header("<f4", ())
    assert b"'shape': (5,), }" in encode_npy_header("<f4", (5,))


@given(
    st.sampled_from(DESCRS), st.lists(st.integers(0, 2**40), max_size=6).map(tuple), st.booleans()
)
def test_round_trip_and_numpy_reads_ours(descr: str, shape: tuple[int, ...], fortran: bool) -> None:
    header = encode_npy_header(descr, shape, fortran)
    assert len(header) % ARRAY_ALIGN == 0
    assert decode_npy_header(header) == NpyHeader(descr, fortran, shape, len(header))
    stream = io.BytesIO(header)
    version = np.lib.format.read_magic(stream)
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else (np.lib.format.read_array_header_2_0)
    )
    assert read(stream) == (shape, fortran, np.dtype(descr))
    assert stream.tell() == len(header)


@given(st.lists(st.integers(0, 4), max_size=4).map(tuple), st.sampled_from(DESCRS))
def test_decodes_headers_numpy_writes(shape: tuple[int, ...], descr: str) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(shape, dtype=descr))
    data = buffer.getvalue()
    header = decode_npy_header(data)
    assert (header.descr, header.shape, header.fortran_order) == (descr, shape, False)
    assert len(data) - header.header_size == np.zeros(shape, dtype=descr).nbytes


def test_fortran_order_and_version_2_from_numpy() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.asfortranarray(np.zeros((3, 4), np.float32)))
    assert decode_npy_header(buffer.getvalue()).fortran_order is True
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.zeros(2), version=(2, 0))
    header = decode_npy_header(buffer.getvalue())
    assert header.shape == (2,) and header.header_size % 64 == 0


def test_long_shapes_switch_to_version_2() -> None:
    header = encode_npy_header("<f4", (1,) * 30000)
    assert header[6] == 2 and len(header) % ARRAY_ALIGN == 0
    assert int.from_bytes(header[8:12], "little") == len(header) - 12
    with pytest.raises(DataLossError, match="at most"):
        decode_npy_preamble(header[:12])  # longer than the reader's bound
    short = encode_npy_header("<f4", (1,) * 100)
    assert short[6] == 1 and decode_npy_preamble(short[:12]) == (1, len(short))


@pytest.mark.parametrize(
    "data, error, match",
    [
        (b"\x93NUMPX\x01\x00\x10\x00", DataLossError, "magic"),
        (b"\x93NUMPY\x04\x00\x10\x00", UnimplementedError, "version 4.0"),
        (b"\x93NUMPY\x01", DataLossError, "at least 10"),
        (b"\x93NUMPY\x01\x00\xff\x00{'descr'", DataLossError, "needs 265 bytes"),
        (b"\x93NUMPY\x02\x00\x00\x00\x00\x40", DataLossError, "at most"),
    ],
)
def test_damaged_preambles(data: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        decode_npy_header(data)


def _with_dict(text: str) -> bytes:
    body = text.encode("latin-1") + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


@pytest.mark.parametrize(
    "text, error",
    [
        ("{'descr': '<f4', 'fortran_order': False}", DataLossError),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", DataLossError),
        ("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", DataLossError),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", DataLossError),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", DataLossError),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (True,)}", DataLossError),
        ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", UnimplementedError),
        ("__import__('os').system('true')", DataLossError),
        ("[" * 5000 + "]" * 5000, DataLossError),
        ("{'shape': (" + "9" * 5000 + ",)}", DataLossError),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", DataLossError),
    ],
)
def test_damaged_dicts_are_refused(text: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        decode_npy_header(_with_dict(text))
    assert info.value.offset is not None

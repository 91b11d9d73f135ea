"""The safetensors header codec: literal bytes, the reference implementation, hostile headers."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
import safetensors
import safetensors.numpy
from hypothesis import given
from hypothesis import strategies as st

from dtckpt.errors import DataLossError, InvalidArgumentError, UnimplementedError
from dtckpt.interop.safetensors_codec import (
    DTYPE_SIZES,
    MAX_HEADER_SIZE,
    SafetensorsEntry,
    SafetensorsHeader,
    decode_header_length,
    decode_safetensors_header,
    encode_safetensors_header,
)

# The dtypes the reference reader of safetensors 0.8 turns into NumPy arrays.
NUMPY_DTYPES = [
    "BOOL",
    "U8",
    "I8",
    "I16",
    "U16",
    "F16",
    "I32",
    "U32",
    "F32",
    "C64",
    "F64",
    "I64",
    "U64",
]


def test_literal_bytes_of_one_float32_vector() -> None:
    header = encode_safetensors_header([SafetensorsEntry("w", "F32", (2,), 0, 8)])
    body = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    assert header == struct.pack("<Q", 56) + body + b"  "


def test_metadata_comes_first_and_padding_aligns_to_8() -> None:
    header = encode_safetensors_header(
        [SafetensorsEntry("a/b", "BF16", (), 0, 2)], {"dtckpt.object_graph": "AAE="}
    )
    assert header[8:].startswith(b'{"__metadata__":{"dtckpt.object_graph":"AAE="},"a/b":')
    assert len(header) % 8 == 0


def _file(entries: list[SafetensorsEntry], metadata: dict[str, str] | None) -> bytes:
    header = encode_safetensors_header(entries, metadata)
    end = max((e.end for e in entries), default=0)
    return header + bytes(range(256)) * (end // 256) + bytes(range(end % 256))


@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[SafetensorsEntry], dict[str, str]]:
    keys = draw(
        st.lists(
            st.text(min_size=1, max_size=8).filter(lambda k: k != "__metadata__"),
            unique=True,
            max_size=5,
        )
    )
    entries = []
    position = 0
    for key in keys:
        dtype = draw(st.sampled_from(NUMPY_DTYPES))
        shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
        size = int(np.prod(shape, dtype=np.int64)) * DTYPE_SIZES[dtype]
        entries.append(SafetensorsEntry(key, dtype, shape, position, position + size))
        position += size
    metadata = draw(st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3))
    return entries, metadata


@given(layouts())
def test_round_trip_and_the_reference_reader_agrees(
    layout: tuple[list[SafetensorsEntry], dict[str, str]],
) -> None:
    entries, metadata = layout
    data = _file(entries, metadata)
    length = decode_header_length(data[:8], len(data))
    header = decode_safetensors_header(data[8 : 8 + length], data_size=len(data) - 8 - length)
    assert header == SafetensorsHeader(
        tuple(sorted(entries, key=lambda e: (e.begin, e.end))), metadata, 8 + length
    )
    assert (8 + length) % 8 == 0
    reference = dict(safetensors.deserialize(data))
    assert set(reference) == {e.key for e in entries}
    for e in entries:
        view = reference[e.key]
        assert view["dtype"] == e.dtype and tuple(view["shape"]) == e.shape
        assert bytes(view["data"]) == data[8 + length + e.begin : 8 + length + e.end]


def test_decodes_what_the_reference_writer_writes() -> None:
    tensors = {"b": np.arange(3, dtype=np.int64), "a": np.ones((2, 2), np.float16)}
    data = safetensors.numpy.save(tensors, metadata={"format": "np"})
    length = decode_header_length(data[:8], len(data))
    header = decode_safetensors_header(data[8 : 8 + length], data_size=len(data) - 8 - length)
    assert header.metadata == {"format": "np"}
    got = {e.key: (e.dtype, e.shape, e.end - e.begin) for e in header.entries}
    assert got == {"b": ("I64", (3,), 24), "a": ("F16", (2, 2), 8)}


def test_encoder_refuses_reserved_and_repeated_keys() -> None:
    with pytest.raises(InvalidArgumentError):
        encode_safetensors_header([SafetensorsEntry("__metadata__", "F32", (), 0, 4)])
    with pytest.raises(InvalidArgumentError):
        encode_safetensors_header([SafetensorsEntry("a", "F32", (), 0, 4)] * 2)
    with pytest.raises(InvalidArgumentError):
        encode_safetensors_header([SafetensorsEntry("a", "C128", (), 0, 16)])
    with pytest.raises(InvalidArgumentError, match="UTF-8"):
        encode_safetensors_header([SafetensorsEntry("\udcff", "F32", (), 0, 4)])


@pytest.mark.parametrize(
    "first, size, match",
    [
        (b"\x01\x02", 2, "8-byte header length"),
        (struct.pack("<Q", MAX_HEADER_SIZE + 1), 10**12, "exceeds the limit"),
        (struct.pack("<Q", 2**63), 2**64, "exceeds the limit"),
        (struct.pack("<Q", 100), 50, "runs past the end"),
    ],
)
def test_bad_header_lengths(first: bytes, size: int, match: str) -> None:
    with pytest.raises(DataLossError, match=match) as info:
        decode_header_length(first, size)
    assert info.value.offset == 0


def _entry(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    "body, data_size, key, match",
    [
        (b'["not an object"]', 0, None, "start with"),
        (b"[]", 0, None, "start with"),
        (b"{not json", 0, None, "not valid JSON"),
        (b'{"a": NaN}', 0, None, "not valid JSON"),
        (b'{"a": {}, "a": {}}', 0, None, "not valid JSON"),
        (b"{\xff}", 0, None, "not valid JSON"),
        (b"{" * 100000, 0, None, "not valid JSON"),
        (json.dumps({"__metadata__": {"a": 1}}).encode(), 0, "__metadata__", "strings"),
        (json.dumps({"w": _entry(dtype=None)}).encode(), 8, "w", "exactly"),
        (json.dumps({"w": _entry(extra=1)}).encode(), 8, "w", "exactly"),
        (json.dumps({"w": _entry(dtype="F128")}).encode(), 8, "w", "unknown"),
        (json.dumps({"w": _entry(shape=[-2])}).encode(), 8, "w", "shape"),
        (json.dumps({"w": _entry(shape=[2.0])}).encode(), 8, "w", "shape"),
        (json.dumps({"w": _entry(data_offsets=[0])}).encode(), 8, "w", "data_offsets"),
        (json.dumps({"w": _entry(data_offsets=[8, 0])}).encode(), 8, "w", "hold"),
        (json.dumps({"w": _entry(data_offsets=[0, 12])}).encode(), 12, "w", "needs 8"),
        (json.dumps({"w": _entry(shape=[2**40, 2**40])}).encode(), 8, "w", "needs"),
        (json.dumps({"w": _entry(data_offsets=[8, 16])}).encode(), 16, "w", "hole"),
        (json.dumps({"w": _entry(), "v": _entry()}).encode(), 8, None, "overlaps"),
        (json.dumps({"w": _entry(data_offsets=[2**62, 2**62 + 8])}).encode(), 8, "w", "hole"),
        (json.dumps({"w": _entry()}).encode(), 16, None, "cover 8 bytes of a 16-byte"),
        (json.dumps({"w": _entry()}).encode(), 4, None, "cover 8 bytes of a 4-byte"),
    ],
)
def test_hostile_headers_raise_located_errors(
    body: bytes, data_size: int, key: str | None, match: str
) -> None:
    with pytest.raises(DataLossError, match=match) as info:
        decode_safetensors_header(body, data_size=data_size)
    assert info.value.offset == 8
    if key is not None:
        assert info.value.key == key


def test_packed_sub_byte_dtypes_are_unimplemented() -> None:
    body = json.dumps({"w": _entry(dtype="F4", data_offsets=[0, 1])}).encode()
    with pytest.raises(UnimplementedError, match="F4"):
        decode_safetensors_header(body, data_size=1)

""".safetensors files: written by the safetensors package, read by it, and dtckpt's choices."""

from __future__ import annotations

import base64
import json
import pathlib
import struct

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy
from safetensors import safe_open

import dtckpt
from dtckpt.errors import DataLossError, InvalidArgumentError, UnimplementedError
from dtckpt.interop import convert, read_safetensors, write_safetensors
from dtckpt.interop.safetensors_io import DTYPES_METADATA, OBJECT_GRAPH_METADATA
from dtckpt.interop.tensors import OBJECT_GRAPH_KEY
from tests.conftest import assert_same_array

from .conftest import object_array


def test_files_the_reference_writer_writes_become_checkpoints(
    tmp_path: pathlib.Path, small_chunks: int
) -> None:
    values = {
        "model.layers.0.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "bf": np.array([1.5, -2.0, 3.0], dtype=ml_dtypes.bfloat16),
        "h": np.array([0.5], dtype=np.float16),
        "i": np.array([[-1, 2]], dtype=np.int64),
        "u": np.array([7], dtype=np.uint32),
        "b": np.array([True, False]),
        "c": np.array([1 - 1j], dtype=np.complex64),
        "scalar": np.array(2.5),
        "empty": np.zeros((2, 0), dtype=np.int16),
    }
    path = str(tmp_path / "ref.safetensors")
    safetensors.numpy.save_file(values, path, metadata={"format": "np"})
    report = convert(path, str(tmp_path / "ckpt"))
    assert report.tensors == len(values) and report.source_format == "safetensors"
    with dtckpt.load_checkpoint(str(tmp_path / "ckpt")) as reader:
        for key, value in values.items():
            assert_same_array(reader.get_tensor(key), value, key)


def test_layout_is_aligned_and_the_reference_reader_agrees(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    values = [
        np.int8(3),
        np.arange(3, dtype=np.float64),
        np.ones(2, np.float16),
        np.array([1 + 1j, 2], dtype=np.complex128),
        np.arange(5, dtype=np.int32),
    ]
    dtckpt.save_v2(prefix, ["a", "b", "c", "d", "e"], [""] * 5, values)
    path = str(tmp_path / "x.safetensors")
    convert(prefix, path)
    raw = pathlib.Path(path).read_bytes()
    (length,) = struct.unpack_from("<Q", raw)
    header = json.loads(raw[8 : 8 + length])
    assert (8 + length) % 8 == 0
    order = sorted((v["data_offsets"][0], k) for k, v in header.items() if k != "__metadata__")
    assert [k for _, k in order] == ["b", "d", "e", "c", "a"]  # 8-byte items first, then by key
    for begin, key in order:
        size = {"F64": 8, "I32": 4, "F16": 2, "I8": 1}[header[key]["dtype"]]
        assert (8 + length + begin) % size == 0
    assert header["d"] == {"dtype": "F64", "shape": [2, 2], "data_offsets": [24, 56]}
    assert json.loads(header["__metadata__"][DTYPES_METADATA]) == {"d": "complex128"}
    loaded = safetensors.numpy.load_file(path)
    assert loaded["d"].tolist() == [[1.0, 1.0], [2.0, 0.0]]  # real and imaginary parts
    assert_same_array(loaded["b"], values[1])
    with read_safetensors(path) as source:
        assert_same_array(source["d"].read(), values[3])


def test_object_graph_travels_in_metadata(tmp_path: pathlib.Path) -> None:
    graph = b"\n\x0b\n\t\x08\x01\x12\x05model\x00"
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(
        prefix,
        [OBJECT_GRAPH_KEY, "w"],
        ["", ""],
        [object_array([graph], ()), np.ones(2, np.float32)],
    )
    path = str(tmp_path / "x.safetensors")
    report = convert(prefix, path)
    assert report.tensors == 2 and report.bytes == len(graph) + 8
    with safe_open(path, framework="np") as opened:
        assert list(opened.keys()) == ["w"]
        assert base64.b64decode(opened.metadata()[OBJECT_GRAPH_METADATA]) == graph
    back = convert(path, str(tmp_path / "back"))
    assert (back.tensors, back.bytes) == (report.tensors, report.bytes)
    with dtckpt.load_checkpoint(str(tmp_path / "back")) as reader:
        assert reader.get_tensor(OBJECT_GRAPH_KEY).item() == graph


def test_strings_other_than_the_object_graph_are_refused(tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(
        prefix,
        ["a", "vocab", OBJECT_GRAPH_KEY],
        ["", "", ""],
        [np.ones(1), object_array([b"x", b"y"], (2,)), object_array([b"g1", b"g2"], (2,))],
    )
    with pytest.raises(InvalidArgumentError, match="string") as error:
        convert(prefix, str(tmp_path / "x.safetensors"))
    assert error.value.key == OBJECT_GRAPH_KEY  # not a scalar: not an object graph
    assert not (tmp_path / "x.safetensors").exists()
    report = write_safetensors(prefix, str(tmp_path / "x.safetensors"), skip_unsupported=True)
    assert report.skipped == (OBJECT_GRAPH_KEY, "vocab") and report.tensors == 1


@pytest.mark.parametrize("key, match", [("__metadata__", "reserved"), ("\udcfe", "UTF-8")])
def test_keys_a_safetensors_file_cannot_hold(tmp_path: pathlib.Path, key: str, match: str) -> None:
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(prefix, [key], [""], [np.ones(1)])
    with pytest.raises(InvalidArgumentError, match=match) as error:
        convert(prefix, str(tmp_path / "x.safetensors"))
    assert error.value.key == key


def _write(path: pathlib.Path, header: dict[str, object], data: bytes) -> str:
    body = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body)) + body + data)
    return str(path)


def test_dtypes_without_a_tensorflow_counterpart(tmp_path: pathlib.Path) -> None:
    path = _write(
        tmp_path / "e8.safetensors",
        {
            "scale": {"dtype": "F8_E8M0", "shape": [2], "data_offsets": [0, 2]},
            "w": {"dtype": "F32", "shape": [], "data_offsets": [2, 6]},
        },
        b"\x7f\x80" + struct.pack("<f", 1.5),
    )
    with pytest.raises(UnimplementedError, match="F8_E8M0") as error:
        convert(path, str(tmp_path / "ckpt"))
    assert (error.value.path, error.value.key) == (path, "scale")
    report = convert(path, str(tmp_path / "ckpt"), skip_unsupported=True)
    assert report.skipped == ("scale",) and report.tensors == 1


@pytest.mark.parametrize(
    "metadata, match",
    [
        ({DTYPES_METADATA: "{not json"}, "not a map"),
        ({DTYPES_METADATA: '{"w": "float99"}'}, "unknown dtype"),
        ({DTYPES_METADATA: '{"w": "qint8"}'}, "not carried as F32"),
        ({DTYPES_METADATA: '{"w": "complex128"}'}, "complex128"),
        ({OBJECT_GRAPH_METADATA: "***"}, "base64"),
    ],
)
def test_damaged_dtckpt_metadata(
    tmp_path: pathlib.Path, metadata: dict[str, str], match: str
) -> None:
    header = {"__metadata__": metadata, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    path = _write(tmp_path / "m.safetensors", header, bytes(8))
    with pytest.raises(DataLossError, match=match) as error:
        read_safetensors(path)
    assert error.value.path == path


def test_object_graph_both_as_tensor_and_metadata(tmp_path: pathlib.Path) -> None:
    header = {
        "__metadata__": {OBJECT_GRAPH_METADATA: "AA=="},
        OBJECT_GRAPH_KEY: {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
    }
    path = _write(tmp_path / "g.safetensors", header, b"\x00")
    with pytest.raises(DataLossError, match="both") as error:
        read_safetensors(path)
    assert error.value.key == OBJECT_GRAPH_KEY

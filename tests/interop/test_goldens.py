"""Every TF-written golden checkpoint through .npz and .safetensors and back.

Nothing is skipped silently: a golden with string tensors must make the
safetensors conversion raise a typed error naming a string key, before any
file is written; only then is it converted again with ``skip_unsupported``,
and the report must list exactly those keys.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
import safetensors
from safetensors import safe_open

import dtckpt
from dtckpt.dtypes import info
from dtckpt.errors import InvalidArgumentError
from dtckpt.interop import convert, read_tensors
from dtckpt.interop.npz_io import METADATA_MEMBER, npy_descr
from dtckpt.interop.safetensors_io import NATIVE_DTYPES
from dtckpt.interop.tensors import OBJECT_GRAPH_KEY
from tests.conftest import Golden, assert_same_array

from .conftest import assert_same_checkpoints

# Dtypes safetensors 0.8's NumPy reader can build arrays for (it cannot make float8 arrays).
ST_NUMPY = {
    "BOOL",
    "U8",
    "I8",
    "I16",
    "U16",
    "F16",
    "BF16",
    "I32",
    "U32",
    "F32",
    "C64",
    "F64",
    "I64",
    "U64",
}


def _string_keys(golden: Golden) -> list[str]:
    values = golden.manifest["values"]
    return sorted(
        key
        for key, value_id in golden.manifest["expected"].items()
        if values[value_id]["dtype"] == "string" and key != OBJECT_GRAPH_KEY
    )


def test_golden_through_npz(golden: Golden, tmp_path: pathlib.Path) -> None:
    middle = str(tmp_path / "golden.npz")
    there = convert(golden.prefix, middle)
    expected = golden.expected()
    assert (there.tensors, there.skipped) == (len(expected), ())
    back = convert(middle, str(tmp_path / "back" / "ckpt"))
    assert (back.tensors, back.bytes, back.source_format) == (there.tensors, there.bytes, "npz")
    with dtckpt.load_checkpoint(str(tmp_path / "back" / "ckpt")) as reader:
        assert sorted(reader.get_variable_to_shape_map()) == sorted(expected)
        for key, value in expected.items():
            assert_same_array(reader.get_tensor(key), value, key)
    _check_numpy_reads(middle, golden)


def _check_numpy_reads(path: str, golden: Golden) -> None:
    """``numpy.load`` lists every key and gives back the bytes; metadata only when needed."""
    values = golden.manifest["values"]
    needs_record = False
    with np.load(path) as archive:
        assert set(archive.files) - {METADATA_MEMBER} == set(golden.manifest["expected"])
        for key, value_id in golden.manifest["expected"].items():
            value = golden.value(value_id)
            got = archive[key]
            assert got.shape == value.shape, key
            if value.dtype == object:
                items = [bytes(v) for v in value.reshape(-1)]
                if any(item.endswith(b"\x00") for item in items):
                    needs_record = True  # NumPy drops trailing NULs: lengths are recorded
                else:
                    assert [bytes(v) for v in got.reshape(-1)] == items, key
                continue
            assert got.tobytes() == value.tobytes(), key
            needs_record |= npy_descr(info(values[value_id]["dtype"]))[1]
        assert (METADATA_MEMBER in archive.files) == needs_record


def test_golden_through_safetensors(golden: Golden, tmp_path: pathlib.Path) -> None:
    middle = str(tmp_path / "golden.safetensors")
    strings = _string_keys(golden)
    skipped: tuple[str, ...] = ()
    if strings:
        with pytest.raises(InvalidArgumentError) as error:
            convert(golden.prefix, middle)
        assert error.value.key in strings and "string" in error.value.message
        assert os.listdir(tmp_path) == []  # refused before anything was written
        skipped = tuple(strings)
    there = convert(golden.prefix, middle, skip_unsupported=bool(strings))
    assert there.skipped == skipped
    expected = {k: v for k, v in golden.expected().items() if k not in skipped}
    assert there.tensors == len(expected)
    back = convert(middle, str(tmp_path / "back" / "ckpt"))
    assert (back.tensors, back.bytes) == (there.tensors, there.bytes)
    assert_same_checkpoints(golden.prefix, str(tmp_path / "back" / "ckpt"), skipped)
    _check_safetensors_reads(middle, expected)


def _check_safetensors_reads(path: str, expected: dict[str, np.ndarray]) -> None:
    tensors = {k: v for k, v in expected.items() if k != OBJECT_GRAPH_KEY}
    with open(path, "rb") as f:
        reference = dict(safetensors.deserialize(f.read()))  # the package's own parser
    assert sorted(reference) == sorted(tensors)
    with safe_open(path, framework="np") as opened:
        assert sorted(opened.keys()) == sorted(tensors)
        assert (OBJECT_GRAPH_KEY in expected) == (
            "dtckpt.object_graph" in (opened.metadata() or {})
        )
        for key, value in tensors.items():
            assert bytes(reference[key]["data"]) == value.tobytes(), key
            if reference[key]["dtype"] in ST_NUMPY:
                got = opened.get_tensor(key)
                assert got.tobytes() == value.tobytes(), key
                if info(value.dtype).enum in NATIVE_DTYPES and value.dtype.kind != "V":
                    assert got.dtype == value.dtype and got.shape == value.shape, key


def test_dtypes_golden_keeps_bfloat16_readable_by_numpy(tmp_path: pathlib.Path) -> None:
    from tests.conftest import load_golden

    golden = load_golden("dtypes")
    convert(golden.prefix, str(tmp_path / "d.npz"))
    with np.load(str(tmp_path / "d.npz")) as archive:
        bf16 = archive["Bfloat16"]
        assert bf16.dtype == np.dtype("<u2")  # the raw bits, see spec I-NZ-2
    assert npy_descr(info("bfloat16")) == ("<u2", True)
    with read_tensors(str(tmp_path / "d.npz")) as source:
        assert source["Bfloat16"].dtype.name == "bfloat16"


def test_object_graph_survives_safetensors_and_restores(tmp_path: pathlib.Path) -> None:
    from tests.conftest import load_golden

    golden = load_golden("little_checkpoint")
    for suffix in ("safetensors", "npz"):
        middle = str(tmp_path / f"g.{suffix}")
        convert(golden.prefix, middle)
        prefix = str(tmp_path / suffix / "ckpt")
        convert(middle, prefix)
        model = dtckpt.Module()
        model.kernel = dtckpt.Variable(np.zeros((3, 2), np.float32))
        model.step = dtckpt.Variable(np.int64(0))
        status = dtckpt.Checkpoint(model=model).read(prefix)  # written by write(): no counter
        status.assert_consumed()
        assert_same_array(
            model.kernel.numpy(),
            golden.value(golden.manifest["expected"]["model/kernel/.ATTRIBUTES/VARIABLE_VALUE"]),
        )

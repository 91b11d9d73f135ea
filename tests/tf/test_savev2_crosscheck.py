"""``dtckpt.save_v2`` / ``restore_v2`` against ``tf.raw_ops.SaveV2`` / ``RestoreV2``, live.

For hypothesis-drawn ``SaveV2`` calls (every dtype SaveV2 accepts, ranks 0-4
with zero-sized dimensions, unicode names, partitioned tensors):

* TF reads what dtckpt wrote: names, shapes, dtypes and bytes;
* ``RestoreV2`` returns the same tensors and sub-slices as ``restore_v2``;
* the same call through TF writes byte-identical ``.index`` and data files;
* dtckpt reads what TF wrote.

Fixed cases add what small drawn tensors miss: tensors of megabytes, index
entries larger than an SSTable block, thousands of keys, control bytes in
names; and which dtypes TF can reassemble from slices.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from hypothesis import HealthCheck, given, settings  # noqa: E402

import dtckpt  # noqa: E402
from dtckpt.dtypes import info  # noqa: E402

from ._tensors import (  # noqa: E402
    SAVE_DTYPES,
    TF_RESLICES,
    SaveCall,
    Tensor,
    assert_dtckpt_value,
    assert_tf_value,
    dtckpt_save,
    files_under,
    save_calls,
    shape_and_slice,
    tf_restore,
    tf_save,
)

CROSSCHECK = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@CROSSCHECK
@given(save_calls())
def test_tf_reads_dtckpt(call: SaveCall) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "ckpt")
        dtckpt_save(prefix, call)
        reader = tf.train.load_checkpoint(prefix)
        assert reader.get_variable_to_shape_map() == {t.name: list(t.shape) for t in call.tensors}
        dtypes = reader.get_variable_to_dtype_map()
        assert sorted(dtypes) == sorted(t.name for t in call.tensors)
        with dtckpt.load_checkpoint(prefix) as ours:
            for t in call.tensors:
                stored = info(ours.bundle.entry(t.name).dtype).name
                assert dtypes[t.name].name == stored == t.dtype, t.name
                assert_tf_value(reader.get_tensor(t.name), t.value, t.name)


@CROSSCHECK
@given(save_calls())
def test_restore_v2_matches_tf(call: SaveCall) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "ckpt")
        dtckpt_save(prefix, call)
        names = [t.name for t in call.tensors]
        dtypes = [t.dtype for t in call.tensors]
        whole = [""] * len(names)
        theirs = tf_restore(prefix, names, whole, dtypes)
        ours = dtckpt.restore_v2(prefix, names, whole, dtypes)
        for t, a, b in zip(call.tensors, theirs, ours):
            assert_tf_value(a, t.value, f"RestoreV2 {t.name}")
            assert_dtckpt_value(b, t.value, f"restore_v2 {t.name}")
        for t in call.tensors:
            if t.request is None:
                continue
            spec = t.request_spec
            (ours_part,) = dtckpt.restore_v2(prefix, [t.name], [spec], [t.dtype])
            assert_dtckpt_value(ours_part, t.expected_request, f"restore_v2 {t.name} {spec!r}")
            if t.tf_can_reslice:
                (theirs_part,) = tf_restore(prefix, [t.name], [spec], [t.dtype])
                assert_tf_value(theirs_part, t.expected_request, f"RestoreV2 {t.name} {spec!r}")


@CROSSCHECK
@given(save_calls())
def test_files_byte_identical_to_tf(call: SaveCall) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = os.path.join(tmp, "ours"), os.path.join(tmp, "theirs")
        dtckpt_save(os.path.join(ours, "ckpt"), call)
        tf_save(os.path.join(theirs, "ckpt"), call)
        ours_files, theirs_files = files_under(ours), files_under(theirs)
        assert sorted(ours_files) == ["ckpt.data-00000-of-00001", "ckpt.index"]
        assert sorted(theirs_files) == sorted(ours_files)
        for name in ours_files:
            assert ours_files[name] == theirs_files[name], name


@CROSSCHECK
@given(save_calls())
def test_dtckpt_reads_tf(call: SaveCall) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "ckpt")
        tf_save(prefix, call)
        for mmap in (False, True):
            with dtckpt.load_checkpoint(prefix, mmap=mmap) as reader:
                shapes = reader.get_variable_to_shape_map()
                assert shapes == {t.name: list(t.shape) for t in call.tensors}
                dtypes = reader.get_variable_to_dtype_map()
                for t in call.tensors:
                    assert dtypes[t.name] == info(t.dtype).numpy, t.name
                    assert info(reader.bundle.entry(t.name).dtype).name == t.dtype
                    assert_dtckpt_value(reader.get_tensor(t.name), t.value, t.name)
        for t in call.tensors:
            if t.request is not None:
                spec = t.request_spec
                (part,) = dtckpt.restore_v2(prefix, [t.name], [spec], [t.dtype])
                assert_dtckpt_value(part, t.expected_request, f"{t.name} {spec!r}")


@pytest.mark.parametrize("dtype", SAVE_DTYPES)
def test_tf_reslice_set(dtype: str, tmp_path: pathlib.Path) -> None:
    """TF reassembles slices of exactly the dtypes in TF_RESLICES, as dtckpt's table says."""
    prefix = str(tmp_path / "ckpt")
    row = info(dtype)
    if row.is_string:
        value = np.array([[b"a", b"b"], [b"c", b""]], dtype=object)
    else:
        value = np.array([[0, 1], [1, 0]], dtype=np.uint8).astype(row.numpy)
    specs = ["2 2 0,1:-", "2 2 1,1:-"]
    dtckpt.save_v2(prefix, ["t", "t"], specs, [value[:1], value[1:]], dtypes=[dtype, dtype])
    try:
        (got,) = tf_restore(prefix, ["t"], [""], [dtype])
    except tf.errors.InvalidArgumentError as exc:
        assert "not supported" in str(exc)
        reslices = False
    else:
        assert_tf_value(got, value, dtype)
        reslices = True
    assert reslices == (dtype in TF_RESLICES)
    assert row.tf_reslices == reslices, f"dtckpt.dtypes says tf_reslices={row.tf_reslices}"


def _save_both(tmp_path: pathlib.Path, call: SaveCall) -> str:
    """Save ``call`` with both writers; assert identical files; return dtckpt's prefix."""
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    dtckpt_save(str(ours / "ckpt"), call)
    tf_save(str(theirs / "ckpt"), call)
    ours_files, theirs_files = files_under(str(ours)), files_under(str(theirs))
    assert sorted(ours_files) == sorted(theirs_files)
    for name in ours_files:
        assert ours_files[name] == theirs_files[name], name
    return str(ours / "ckpt")


def _whole(name: str, value: np.ndarray, dtype: str) -> Tensor:
    box = tuple((0, d) for d in value.shape)
    return Tensor(name, dtype, value, ("",), (box,), None)


def test_large_partitioned_tensor(tmp_path: pathlib.Path) -> None:
    """Tensors past the size where dtckpt overlaps checksumming with I/O."""
    rng = np.random.default_rng(7)
    value = rng.standard_normal((1500, 1100)).astype(np.float32)  # 6.6 MB
    boxes = (((0, 700), (0, 1100)), ((700, 800), (0, 400)), ((700, 800), (400, 700)))
    specs = tuple(shape_and_slice(value.shape, box) for box in boxes)
    request = ((650, 100), (390, 20))
    big = Tensor("big", "float32", value, specs, boxes, request)
    whole = _whole("whole", rng.integers(0, 2**62, (3, 400_000), dtype=np.int64), "int64")
    call = SaveCall((big, whole), ((1, 0), (0, 2), (0, 0), (0, 1)))
    prefix = _save_both(tmp_path, call)
    reader = tf.train.load_checkpoint(prefix)
    for t in call.tensors:
        assert_tf_value(reader.get_tensor(t.name), t.value, t.name)
    (theirs,) = tf_restore(prefix, ["big"], [big.request_spec], ["float32"])
    assert_tf_value(theirs, big.expected_request, "big request")
    (ours,) = dtckpt.restore_v2(prefix, ["big"], [big.request_spec], ["float32"])
    assert_dtckpt_value(ours, big.expected_request, "big request")
    with dtckpt.load_checkpoint(prefix, mmap=True) as mapped:
        assert_dtckpt_value(mapped.get_tensor("whole"), whole.value, "whole")


@pytest.mark.parametrize(
    "names",
    [
        ["k" * 300_000, "j"],  # one entry larger than a 256 KiB index block
        ["k" * 600_000, "k" * 599_999 + "j", "z"],  # entries of over twice the block size
        [f"{i:06d}/" + "x" * 200 for i in range(3000)],  # several blocks, long shared prefixes
        ["a\x00b", "a\x01", "\x7f", "tab\there", "\u00ff\u0100", "\U0010fffd"],  # odd bytes
    ],
    ids=["long", "very_long", "many", "odd_bytes"],
)
def test_index_edge_cases(names: list[str], tmp_path: pathlib.Path) -> None:
    tensors = []
    for i, name in enumerate(names):
        value = np.arange(4, dtype=np.int32) + i
        if i % 2:  # partitioned, so the name also lands in escaped slice keys
            boxes = (((0, 1),), ((1, 3),))
            specs = tuple(shape_and_slice((4,), box) for box in boxes)
            tensors.append(Tensor(name, "int32", value, specs, boxes, ((1, 2),)))
        else:
            tensors.append(_whole(name, value, "int32"))
    order = tuple((t, p) for t, tensor in enumerate(tensors) for p in range(len(tensor.specs)))
    call = SaveCall(tuple(tensors), order)
    prefix = _save_both(tmp_path, call)
    reader = tf.train.load_checkpoint(prefix)
    assert sorted(reader.get_variable_to_shape_map()) == sorted(names)
    with dtckpt.load_checkpoint(prefix) as ours:
        assert sorted(ours.get_variable_to_shape_map()) == sorted(names)
        for t in tensors[:50]:
            assert_tf_value(reader.get_tensor(t.name), t.value, repr(t.name[:20]))
            assert_dtckpt_value(ours.get_tensor(t.name), t.value, repr(t.name[:20]))

"""Big-endian bundles: TF and dtckpt read them to the same native values.

No big-endian host is at hand, so the bundles are made by writing with
``dtckpt.save_v2`` and rewriting the result byte for byte as a big-endian
writer would have produced it (``_bigendian.rewrite_big_endian``). The same
hand-made bundles are the reference for ``BundleWriter(endianness=BIG)``.
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
from dtckpt.format.messages import BIG  # noqa: E402
from dtckpt.format.slices import parse_shape_and_slice  # noqa: E402
from dtckpt.format.table import decode_table  # noqa: E402

from ._bigendian import rewrite_big_endian  # noqa: E402
from ._tensors import (  # noqa: E402
    SAVE_DTYPES,
    SaveCall,
    assert_dtckpt_value,
    assert_tf_value,
    dtckpt_save,
    files_under,
    save_calls,
    tf_restore,
)


def test_rewrite_gives_big_endian_bytes(tmp_path: pathlib.Path) -> None:
    """The helper itself: literal header and data bytes of a tiny bundle."""
    prefix = str(tmp_path / "ckpt")
    dtckpt.save_v2(
        prefix,
        ["f", "s"],
        ["", ""],
        [np.array([1.0, -2.0], np.float32), np.array([b"ab"], dtype=object)],
    )
    rewrite_big_endian(prefix)
    with open(prefix + ".index", "rb") as f:
        header = decode_table(f.read())[0]
    assert header == (b"", bytes.fromhex("0801 1001 1a02 0801"))
    with open(prefix + ".data-00000-of-00001", "rb") as f:
        data = f.read()
    assert data[:8] == bytes.fromhex("3f800000 c0000000")
    assert data[8:9] == b"\x02" and data[-2:] == b"ab"  # varint length, then the bytes
    checksum = int.from_bytes(data[9:13], "big")  # mask(crc32c(uint32_be(2)))
    crc = dtckpt.format.crc.crc32c((2).to_bytes(4, "big"))
    assert checksum == dtckpt.format.crc.mask(crc)


# TF 2.21 refuses to byte-swap the float8/float4 and int4/int2 families
# ("Byte-swapping not supported for tensors with dtype 24"), although their
# elements are single bytes; dtckpt reads them unchanged.
TF_SWAPS = frozenset(SAVE_DTYPES) - {
    "float8_e5m2", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e4m3b11fnuz", "float8_e5m2fnuz",
    "float4_e2m1fn", "int4", "uint4", "int2", "uint2",
}  # fmt: skip

BIG_ENDIAN = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("dtype", SAVE_DTYPES)
def test_tf_byte_swap_set(dtype: str, tmp_path: pathlib.Path) -> None:
    prefix = str(tmp_path / "ckpt")
    row = info(dtype)
    value = np.array([b"ab"], dtype=object) if row.is_string else np.ones(2, row.numpy)
    dtckpt.save_v2(prefix, ["t"], [""], [value], dtypes=[dtype])
    rewrite_big_endian(prefix)
    if dtype in TF_SWAPS:
        assert_tf_value(tf.train.load_checkpoint(prefix).get_tensor("t"), value, dtype)
    else:
        with pytest.raises(tf.errors.OpError, match="Byte-swapping not supported"):
            tf.train.load_checkpoint(prefix).get_tensor("t")
    assert_dtckpt_value(dtckpt.load_checkpoint(prefix).get_tensor("t"), value, dtype)


@BIG_ENDIAN
@given(save_calls())
def test_tf_and_dtckpt_read_big_endian(call: SaveCall) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "ckpt")
        dtckpt_save(prefix, call)
        rewrite_big_endian(prefix)
        reader = tf.train.load_checkpoint(prefix)
        assert reader.get_variable_to_shape_map() == {t.name: list(t.shape) for t in call.tensors}
        for t in call.tensors:
            if t.dtype in TF_SWAPS:
                assert_tf_value(reader.get_tensor(t.name), t.value, f"TF {t.name}")
        for mmap in (False, True):
            with dtckpt.load_checkpoint(prefix, mmap=mmap) as ours:
                assert ours.bundle.header.endianness == BIG
                for t in call.tensors:
                    assert_dtckpt_value(ours.get_tensor(t.name), t.value, f"dtckpt {t.name}")
        for t in call.tensors:
            if t.request is None:
                continue
            spec = t.request_spec
            (part,) = dtckpt.restore_v2(prefix, [t.name], [spec], [t.dtype])
            assert_dtckpt_value(part, t.expected_request, f"restore_v2 {t.name} {spec!r}")
            if t.tf_can_reslice and t.dtype in TF_SWAPS:
                (part,) = tf_restore(prefix, [t.name], [spec], [t.dtype])
                assert_tf_value(part, t.expected_request, f"RestoreV2 {t.name} {spec!r}")


@BIG_ENDIAN
@given(save_calls())
def test_bundle_writer_big_endian_matches_rewrite(call: SaveCall) -> None:
    """``BundleWriter(endianness=BIG)`` writes exactly the hand-made big-endian bundle."""
    with tempfile.TemporaryDirectory() as tmp:
        by_hand = os.path.join(tmp, "by_hand")
        dtckpt_save(os.path.join(by_hand, "ckpt"), call)
        rewrite_big_endian(os.path.join(by_hand, "ckpt"))
        written = os.path.join(tmp, "written")
        with dtckpt.BundleWriter(os.path.join(written, "ckpt"), endianness=BIG) as writer:
            for name, spec, value, dtype in zip(call.names, call.specs, call.values, call.dtypes):
                parsed = parse_shape_and_slice(spec)
                if parsed is None:
                    writer.add(name, value, dtype)
                else:
                    writer.add_slice(name, parsed[0], parsed[1], value, dtype)
        theirs = files_under(by_hand)
        ours = files_under(written)
        assert sorted(ours) == sorted(theirs)
        for name in ours:
            assert ours[name] == theirs[name], name

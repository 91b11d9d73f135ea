"""``save_v2`` / ``restore_v2`` accept and refuse the same inputs as TF's ops, live.

Each case runs through TF and through dtckpt; either both fail, or both
succeed with identical files (saving) or identical values (restoring).
Inputs that crash TensorFlow's process with a failed CHECK (a negative
dimension, an empty tensor name, slices of one name with different full
shapes) cannot be compared this way and are left out.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import dtckpt  # noqa: E402

from ._tensors import assert_tf_value, files_under, tf_restore  # noqa: E402

F = np.arange(4, dtype=np.float32)

# (shape_and_slice, tensor saved under it); the tensor is F or F[:2].
SAVE_SPECS = [
    "4 0,2", "4 -", "4 0,4", "04 00,02", "+4 +0,+2", "4 0,00000000000000000002",
    "4 0,\t2", "4 \t0,2", "4\n 0,2", "4 0,2\n",  # whitespace around numbers
    "4 0,0", "4 -1,2", "4 0,-1", "4 3,2", "4 -0,2", "4 4 -", "4 a,b", "4 0x0,2",
    "4  0,2", "4 0,2 ", " 4 0,2", "4", "4\t0,2", "4 0, 2", "4 0 ,2", "4 --", "4 ,2", "4 0,",
    "4 99999999999999999999,2", "4 0,2_",
    "1_0 0,2", "4 0,1_0",  # digit separators (Python's int() takes them, TF does not)
    "\u0664 0,2", "4 \u0660,2", "4 0,\u0662",  # non-ASCII digits
    "4 0,2,", "4 -:", "4 :-", "4 0,2:",  # empty items, which TF skips
]  # fmt: skip


def _run(fn: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", result)`` or ``("error", exception)`` for either library's errors."""
    try:
        return "ok", fn()
    except (tf.errors.OpError, dtckpt.errors.CheckpointError) as exc:
        return "error", exc


@pytest.mark.parametrize("spec", SAVE_SPECS, ids=repr)
def test_shape_and_slice_parsing_matches_tf(spec: str, tmp_path: pathlib.Path) -> None:
    results = {}
    for side in ("ours", "theirs"):
        for size in (2, 4):  # the tensor whose shape fits the spec, if either does
            directory = tmp_path / side / str(size)
            directory.mkdir(parents=True)
            prefix, value = str(directory / "ckpt"), F[:size]
            if side == "ours":
                outcome = _run(lambda: dtckpt.save_v2(prefix, ["a"], [spec], [value]))
            else:
                outcome = _run(lambda: tf.raw_ops.SaveV2(
                    prefix=prefix, tensor_names=["a"], shape_and_slices=[spec],
                    tensors=[tf.constant(value)]))  # fmt: skip
            if outcome[0] == "ok":
                break
        results[side] = (outcome[0], size)
    assert results["ours"] == results["theirs"], f"{spec!r}: {results}"
    if results["ours"][0] == "ok":
        size = results["ours"][1]
        ours = files_under(str(tmp_path / "ours" / str(size)))
        assert ours == files_under(str(tmp_path / "theirs" / str(size)))


@pytest.fixture(scope="module")
def restore_prefix(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A TF-written bundle: ``x`` whole, ``p`` with a gap between its two slices."""
    prefix = str(tmp_path_factory.mktemp("restore") / "ckpt")
    p = np.arange(6, dtype=np.int32) * 7
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=["x", "p", "p"],
        shape_and_slices=["", "6 0,2", "6 4,2"],
        tensors=[tf.constant(np.array([1.5, -2.0, 3.25], np.float32)),
                 tf.constant(p[0:2]), tf.constant(p[4:6])],
    )  # fmt: skip
    return prefix


RESTORES = [
    ("x", "", "float32"),
    ("x", "3 -", "float32"),
    ("x", "3 1,2", "float32"),
    ("x", "", "float64"),  # dtype differs from the stored one
    ("x", "4 -", "float32"),  # shape differs from the stored one
    ("x", "3 2,2", "float32"),  # out of bounds
    ("x", "3 -:-", "float32"),  # rank differs
    ("missing", "", "float32"),
    ("p", "6 0,2", "int32"),
    ("p", "6 4,2", "int32"),
    ("p", "6 0,1", "int32"),
    ("p", "", "int32"),  # the gap is not stored
    ("p", "6 1,2", "int32"),
    ("p", "6 -", "int32"),
]


@pytest.mark.parametrize(("name", "spec", "dtype"), RESTORES)
def test_restore_v2_matches_tf(restore_prefix: str, name: str, spec: str, dtype: str) -> None:
    theirs = _run(lambda: tf_restore(restore_prefix, [name], [spec], [dtype]))
    ours = _run(lambda: dtckpt.restore_v2(restore_prefix, [name], [spec], [dtype]))
    assert ours[0] == theirs[0], f"TF: {theirs[1]!r}; dtckpt: {ours[1]!r}"
    if ours[0] == "ok":
        (value,) = ours[1]
        assert_tf_value(theirs[1][0], value, f"{name} {spec!r}")


def test_whole_then_slice_of_one_name(tmp_path: pathlib.Path) -> None:
    """TF stores a whole tensor, then turns its entry into a partitioned one.

    ``SaveV2(["a", "a"], ["", "4 0,2"], ...)`` gives an entry with both data
    and a ``slices`` list; readers ignore the data, so the whole tensor can
    no longer be read. dtckpt refuses to write that; it reads TF's file the
    way TF does.
    """
    prefix = str(tmp_path / "ckpt")
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=["a", "a"],
        shape_and_slices=["", "4 0,2"],
        tensors=[tf.constant(F), tf.constant(F[:2])],
    )
    with pytest.raises(dtckpt.errors.AlreadyExistsError):
        dtckpt.save_v2(str(tmp_path / "ours"), ["a", "a"], ["", "4 0,2"], [F, F[:2]])
    for spec in ("", "4 0,2", "4 1,1", "4 1,2"):
        theirs = _run(lambda: tf_restore(prefix, ["a"], [spec], ["float32"]))
        ours = _run(lambda: dtckpt.restore_v2(prefix, ["a"], [spec], ["float32"]))
        assert ours[0] == theirs[0], spec
        if ours[0] == "ok":
            assert_tf_value(theirs[1][0], ours[1][0], spec)

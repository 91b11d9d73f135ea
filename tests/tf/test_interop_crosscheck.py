"""Checkpoints converted through .npz and .safetensors are read and restored by TensorFlow."""

from __future__ import annotations

import pathlib

import ml_dtypes
import numpy as np
import pytest

pytest.importorskip("tensorflow")
import safetensors.numpy  # noqa: E402
import tensorflow as tf  # noqa: E402

from dtckpt.interop import convert  # noqa: E402
from tests.conftest import load_golden  # noqa: E402
from tests.tf._tensors import assert_tf_value  # noqa: E402


def _tf_dtypes(prefix: str) -> dict[str, str]:
    return {
        k: v.name for k, v in tf.train.load_checkpoint(prefix).get_variable_to_dtype_map().items()
    }


@pytest.mark.parametrize("suffix", ["npz", "safetensors"])
def test_every_dtype_comes_back_readable_by_tensorflow(tmp_path: pathlib.Path, suffix: str) -> None:
    golden = load_golden("dtypes")
    middle = str(tmp_path / f"d.{suffix}")
    report = convert(golden.prefix, middle, skip_unsupported=suffix == "safetensors")
    back = str(tmp_path / "back" / "ckpt")
    convert(middle, back)
    expected = {k: v for k, v in golden.expected().items() if k not in report.skipped}
    reader = tf.train.load_checkpoint(back)
    assert sorted(reader.get_variable_to_shape_map()) == sorted(expected)
    original = _tf_dtypes(golden.prefix)
    assert _tf_dtypes(back) == {k: original[k] for k in expected}  # bfloat16 stays bfloat16
    for key, value in expected.items():
        assert_tf_value(reader.get_tensor(key), value, key)


class _Model(tf.Module):
    def __init__(self, with_text: bool) -> None:
        super().__init__()
        self.kernel = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5)
        self.embedding = tf.Variable(tf.cast(tf.range(-4.0, 4.0, 0.5), tf.bfloat16))
        self.step = tf.Variable(np.int64(1234))
        self.mask = tf.Variable([True, False, True])
        self.layers = [tf.Variable(np.array([1 + 2j], np.complex128))]
        if with_text:
            self.vocab = tf.Variable([b"a", b"b\x00", b""])


def _zeroed(model: _Model) -> None:
    for variable in model.variables:
        variable.assign(tf.zeros_like(variable))


@pytest.mark.parametrize("suffix", ["npz", "safetensors"])
def test_tensorflow_restores_a_converted_object_checkpoint(
    tmp_path: pathlib.Path, suffix: str
) -> None:
    model = _Model(with_text=suffix == "npz")
    saved = tf.train.Checkpoint(model=model).save(str(tmp_path / "tf" / "ckpt"))
    middle = str(tmp_path / f"m.{suffix}")
    convert(str(tmp_path / "tf"), middle)  # the directory: its latest checkpoint
    back = str(tmp_path / "back" / "ckpt")
    convert(middle, back)
    fresh = _Model(with_text=suffix == "npz")
    _zeroed(fresh)
    tf.train.Checkpoint(model=fresh).restore(back).assert_consumed()
    for ours, theirs in zip(fresh.variables, model.variables, strict=True):
        assert ours.dtype == theirs.dtype
        assert np.array_equal(ours.numpy(), theirs.numpy()), ours.name
    assert tf.train.load_checkpoint(back).get_tensor(
        "save_counter/.ATTRIBUTES/VARIABLE_VALUE"
    ) == tf.train.load_checkpoint(saved).get_tensor("save_counter/.ATTRIBUTES/VARIABLE_VALUE")


def test_files_written_by_numpy_and_safetensors_become_tensorflow_checkpoints(
    tmp_path: pathlib.Path,
) -> None:
    values = {
        "model/w/.ATTRIBUTES/VARIABLE_VALUE": np.linspace(-1, 1, 12, dtype=np.float32).reshape(
            3, 4
        ),
        "ints": np.arange(5, dtype=np.int64),
        "flags": np.array([[True], [False]]),
    }
    np.savez_compressed(tmp_path / "np.npz", **values)
    safetensors.numpy.save_file(
        {**values, "bf": np.array([0.5, -3.0], dtype=ml_dtypes.bfloat16)},
        str(tmp_path / "st.safetensors"),
    )
    for name in ("np.npz", "st.safetensors"):
        prefix = str(tmp_path / name.split(".")[0] / "ckpt")
        convert(str(tmp_path / name), prefix)
        reader = tf.train.load_checkpoint(prefix)
        for key, value in values.items():
            assert_tf_value(reader.get_tensor(key), value, key)
    reader = tf.train.load_checkpoint(str(tmp_path / "st" / "ckpt"))
    assert reader.get_variable_to_dtype_map()["bf"] == tf.bfloat16
    assert reader.get_tensor("bf").tolist() == [0.5, -3.0]

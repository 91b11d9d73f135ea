"""PythonState: Python values saved as one string attribute (rule O-PS-1)."""

from __future__ import annotations

import io
import pathlib
from typing import Any

import numpy as np
import pytest

import dtckpt
from dtckpt.checkpoint.trackable import Trackable
from dtckpt.errors import InvalidArgumentError
from dtckpt.train.experimental import PythonState


class NumpyWrapper(PythonState):
    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.serialized = 0

    def serialize(self) -> bytes:
        self.serialized += 1
        buffer = io.BytesIO()
        np.save(buffer, self.array, allow_pickle=False)
        return buffer.getvalue()

    def deserialize(self, string_value: bytes) -> None:
        self.array = np.load(io.BytesIO(string_value), allow_pickle=False)


class Text(PythonState):
    def __init__(self, text: str) -> None:
        self.text = text

    def serialize(self) -> str:
        return self.text

    def deserialize(self, string_value: bytes) -> None:
        self.text = string_value.decode("utf-8")


def test_round_trip_and_key(tmp_path: pathlib.Path) -> None:
    state = NumpyWrapper(np.arange(6.0).reshape(2, 3))
    ckpt = dtckpt.Checkpoint(numpy=state)
    path = ckpt.save(str(tmp_path / "ckpt"))
    assert ("numpy/.ATTRIBUTES/py_state", []) in dtckpt.list_variables(path)
    state.array = state.array * 2
    ckpt.restore(path).assert_consumed()
    np.testing.assert_array_equal(state.array, np.arange(6.0).reshape(2, 3))


def test_restore_does_not_serialize(tmp_path: pathlib.Path) -> None:
    path = dtckpt.Checkpoint(numpy=NumpyWrapper(np.ones(3))).write(str(tmp_path / "w"))
    target = NumpyWrapper(np.zeros(1))
    dtckpt.Checkpoint(numpy=target).read(path).assert_consumed()
    assert target.serialized == 0 and target.array.tolist() == [1.0, 1.0, 1.0]


def test_str_state_is_saved_as_utf8(tmp_path: pathlib.Path) -> None:
    path = dtckpt.Checkpoint(t=Text("héllo")).write(str(tmp_path / "w"))
    assert dtckpt.load_variable(path, "t/.ATTRIBUTES/py_state") == "héllo".encode()
    back = Text("")
    dtckpt.Checkpoint(t=back).read(path).assert_consumed()
    assert back.text == "héllo"


class NumberNamedLikeState(Trackable):
    def _serialize_to_tensors(self) -> dict[str, Any]:
        return {"py_state": np.float32(1)}


def test_a_non_string_value_is_refused_before_anything_changes(tmp_path: pathlib.Path) -> None:
    holder = dtckpt.Module()
    holder.x = NumberNamedLikeState()
    path = dtckpt.Checkpoint(m=holder).write(str(tmp_path / "w"))
    other = dtckpt.Module()
    other.x = Text("kept")
    with pytest.raises(InvalidArgumentError, match="py_state"):
        dtckpt.Checkpoint(m=other).read(path)
    assert other.x.text == "kept"


class ArrayAttributes(dtckpt.Module):
    """Attributes that are NumPy arrays live in PythonState objects made on first access,
    so a restore fills attributes that do not exist yet (TensorFlow's NumPy-state example)."""

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "_arrays", dtckpt.Module())
        self._track_trackable(self._arrays, "_arrays")

    def __getattr__(self, name: str) -> Any:
        arrays = object.__getattribute__(self, "_arrays")
        if name.startswith("_"):
            raise AttributeError(name)
        probe = NumpyWrapper(np.array([]))
        setattr(arrays, name, probe)  # restored here if a restore waits for ``name``
        if probe.array.size == 0:
            delattr(arrays, name)
            raise AttributeError(name)
        return probe.array

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, np.ndarray):
            setattr(self._arrays, name, NumpyWrapper(value))
        else:
            super().__setattr__(name, value)


def test_numpy_state_example(tmp_path: pathlib.Path) -> None:
    arrays = ArrayAttributes()
    arrays.x = np.zeros((3, 4))
    path = dtckpt.Checkpoint(numpy_arrays=arrays).save(str(tmp_path / "ckpt"))
    fresh = ArrayAttributes()
    dtckpt.Checkpoint(numpy_arrays=fresh).restore(path)
    np.testing.assert_array_equal(fresh.x, np.zeros((3, 4)))  # made on first access, restored
    with pytest.raises(AttributeError):
        fresh.y  # noqa: B018

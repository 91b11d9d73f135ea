"""Variables, modules and tracked containers."""

from __future__ import annotations

import numpy as np
import pytest

import dtckpt
from dtckpt.checkpoint.data_structures import DictWrapper, ListWrapper, TupleWrapper
from dtckpt.errors import InvalidArgumentError


def test_variable_basics() -> None:
    v = dtckpt.Variable(1.5)
    assert v.dtype == np.float32 and v.shape == () and v.name == "Variable:0"
    assert v.full_name == "Variable" and v.trainable
    w = dtckpt.Variable([1, 2], name="w", trainable=False)
    assert w.dtype == np.int32 and w.name == "w:0" and not w.trainable
    assert dtckpt.Variable(lambda: np.zeros(3), dtype="float16").dtype == np.float16
    w.assign([3, 4])
    assert w.numpy().tolist() == [3, 4]
    w.assign_add([1, 1])
    assert w.numpy().tolist() == [4, 5]
    with pytest.raises(InvalidArgumentError, match="shape"):
        w.assign([1, 2, 3])
    s = dtckpt.Variable("text")
    assert s.numpy().item() == b"text"
    s.assign("more")
    assert s.numpy().item() == b"more"


def test_module_tracks_attributes_in_assignment_order() -> None:
    m = dtckpt.Module()
    m.b = dtckpt.Variable(1.0)
    m.a = dtckpt.Variable(2.0)
    m.config = 3  # not trackable: not a dependency
    m.layers = [dtckpt.Module(), [dtckpt.Variable(3.0)]]
    m.table = {"x": dtckpt.Variable(4.0)}
    m.pair = (dtckpt.Variable(5.0),)
    children = m._trackable_children()
    assert list(children) == ["b", "a", "layers", "table", "pair"]
    assert isinstance(m.layers, ListWrapper) and isinstance(m.layers[1], ListWrapper)
    assert isinstance(m.table, DictWrapper) and isinstance(m.pair, TupleWrapper)
    assert list(m.layers._trackable_children()) == ["0", "1"]
    m.b = dtckpt.Variable(9.0)  # re-assigning keeps the position
    assert list(m._trackable_children()) == ["b", "a", "layers", "table", "pair"]
    del m.a
    assert "a" not in m._trackable_children()


def test_module_variables_order_is_tf_modules() -> None:
    class Dense(dtckpt.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = dtckpt.Variable(np.zeros((2, 2), np.float32), name="w")
            self.b = dtckpt.Variable(np.zeros(2, np.float32), name="b", trainable=False)

    m = dtckpt.Module(name="outer")
    m.z = dtckpt.Variable(0.0, name="z")
    m.layer = Dense()
    m.a = dtckpt.Variable(0.0, name="a")
    m.d = {"k2": dtckpt.Variable(0.0, name="k2"), "k1": dtckpt.Variable(0.0, name="k1")}
    # Own attributes sorted by name (dicts by key), then submodules.
    assert [v.full_name for v in m.variables] == ["a", "k1", "k2", "z", "b", "w"]
    assert [v.full_name for v in m.trainable_variables] == ["a", "k1", "k2", "z", "w"]
    assert m.submodules == (m.layer,)
    assert m.name == "outer" and Dense().name == "dense"

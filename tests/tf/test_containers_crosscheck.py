"""Tracked containers, PythonState and the ``tf.train`` helpers, in dtckpt and in TensorFlow.

Each scenario builds the same objects and makes the same changes in both
libraries, then saves: both refuse with the same reason (``Unable to save ...``,
the same sentence), or both write byte-identical files. PythonState values
cross in both directions; ``CheckpointView``/``TrackableView`` answer alike.
"""

from __future__ import annotations

import collections
import io
import os
import re
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")
import tensorflow as tf  # noqa: E402
from tensorflow.python.trackable import data_structures as tf_data_structures  # noqa: E402

import dtckpt  # noqa: E402
import dtckpt.train  # noqa: E402

TF = types.SimpleNamespace(
    Module=tf.Module,
    Variable=lambda value, **kw: tf.Variable(value, **kw),
    NoDependency=tf_data_structures.NoDependency,
    Checkpoint=tf.train.Checkpoint,
)
DT = types.SimpleNamespace(
    Module=dtckpt.Module,
    Variable=dtckpt.Variable,
    NoDependency=dtckpt.NoDependency,
    Checkpoint=dtckpt.Checkpoint,
)

Pair = collections.namedtuple("Pair", ["first", "second"])


class CustomNew(collections.namedtuple("CustomNew", ["x"])):
    def __new__(cls) -> CustomNew:
        return super().__new__(cls, [])


# Each scenario: lib -> module to save. ``lib`` is TF or DT above.
def outside_append(lib: Any) -> Any:
    m, held = lib.Module(), []
    m.l = held
    held.append(lib.Variable(1.0))
    return m


def insert_trackable(lib: Any) -> Any:
    m = lib.Module()
    m.l = [lib.Variable(1.0)]
    m.l.insert(0, lib.Variable(2.0))
    return m


def insert_plain(lib: Any) -> Any:
    m = lib.Module()
    m.l = [1, 2]
    m.l.insert(0, 0)
    m.l.append(lib.Variable(3.0))
    return m


def delete_trackable(lib: Any) -> Any:
    m = lib.Module()
    m.l = [lib.Variable(1.0), 2]
    del m.l[1]
    return m


def delete_plain_then_append(lib: Any) -> Any:
    m = lib.Module()
    m.l = [1, 2, 3]
    del m.l[0]
    m.l.append(lib.Variable(4.0))
    return m


def sort_trackables(lib: Any) -> Any:
    m = lib.Module()
    m.l = [[1], [2]]
    m.l.sort()
    return m


def reverse_middle_only(lib: Any) -> Any:
    m = lib.Module()
    m.l = [1, lib.Variable(1.0), 3]
    m.l.reverse()
    return m


def reverse_moving(lib: Any) -> Any:
    m = lib.Module()
    m.l = [lib.Variable(1.0), 2]
    m.l.reverse()
    return m


def set_item_over_plain(lib: Any) -> Any:
    m = lib.Module()
    m.l = [None, None, None]
    m.l[2] = lib.Variable(2.0)
    m.l[0] = lib.Variable(0.0)
    return m


def set_item_negative(lib: Any) -> Any:
    m = lib.Module()
    m.l = [1, 2, 3]
    m.l[-1] = lib.Variable(3.0)
    return m


def set_item_over_trackable(lib: Any) -> Any:
    m = lib.Module()
    m.l = [lib.Variable(1.0)]
    m.l[0] = lib.Variable(2.0)
    return m


def slice_over_plain(lib: Any) -> Any:
    m = lib.Module()
    m.l = [1, 2, 3, 4]
    m.l[1:3] = [lib.Variable(1.0), 7, lib.Variable(2.0)]
    return m


def slice_over_trackable(lib: Any) -> Any:
    m = lib.Module()
    m.l = [1, lib.Variable(1.0)]
    m.l[:] = [2, 3]
    return m


def times_two(lib: Any) -> Any:
    m = lib.Module()
    m.l = [1, lib.Variable(1.0)]
    m.l *= 2
    return m


def times_zero(lib: Any) -> Any:
    m = lib.Module()
    m.l = [lib.Variable(1.0)]
    m.l *= 0
    return m


def pop_trackable(lib: Any) -> Any:
    m = lib.Module()
    m.l = [lib.Variable(1.0), lib.Variable(2.0)]
    m.l.pop()
    return m


def no_dependency_element(lib: Any) -> Any:
    m = lib.Module()
    m.l = [lib.Variable(1.0), lib.NoDependency(lib.Variable(2.0))]
    m.l.append(lib.Variable(3.0))
    return m


def nested_after_append(lib: Any) -> Any:
    m = lib.Module()
    m.l = [[]]
    m.l[0].append(lib.Variable(1.0))
    m.l.append({"k": lib.Variable(2.0)})
    return m


def dict_int_key_trackable(lib: Any) -> Any:
    m = lib.Module()
    m.d = {1: lib.Variable(1.0), "1": lib.Variable(2.0)}
    return m


def dict_int_key_plain(lib: Any) -> Any:
    m = lib.Module()
    m.d = {1: 3, (2, 3): "x", "a": lib.Variable(1.0)}
    m.d[4] = lib.NoDependency([])
    return m


def dict_outside_change(lib: Any) -> Any:
    m, held = lib.Module(), {}
    m.d = held
    held["a"] = lib.Variable(1.0)
    return m


def dict_pop(lib: Any) -> Any:
    m = lib.Module()
    m.d = {"a": 1, "b": lib.Variable(1.0)}
    m.d.pop("a")
    return m


def dict_setdefault(lib: Any) -> Any:
    m = lib.Module()
    m.d = {}
    m.d.setdefault("a", [])
    return m


def dict_overwrite_and_delete(lib: Any) -> Any:
    m = lib.Module()
    m.d = {"a": lib.Variable(1.0), "b": 2}
    m.d["a"] = lib.Variable(5.0)
    del m.d["b"]
    m.d.update(c=lib.Variable(3.0))
    return m


def namedtuple_of_variables(lib: Any) -> Any:
    m = lib.Module()
    m.nt = Pair(first=lib.Variable(1.0), second=[lib.Variable(2.0)])
    return m


def namedtuple_not_constructable(lib: Any) -> Any:
    m = lib.Module()
    m.nt = CustomNew()
    m.nt.x.append(lib.Variable(1.0))
    return m


def tuple_with_no_dependency(lib: Any) -> Any:
    m = lib.Module()
    m.t = (lib.NoDependency(lib.Variable(1.0)), lib.Variable(2.0))
    return m


def no_dependency_attribute(lib: Any) -> Any:
    m = lib.Module()
    m.kept = lib.NoDependency([lib.Variable(1.0)])
    m.saved = lib.Variable(2.0)
    return m


SCENARIOS: list[Callable[[Any], Any]] = [
    outside_append,
    insert_trackable,
    insert_plain,
    delete_trackable,
    delete_plain_then_append,
    sort_trackables,
    reverse_middle_only,
    reverse_moving,
    set_item_over_plain,
    set_item_negative,
    set_item_over_trackable,
    slice_over_plain,
    slice_over_trackable,
    times_two,
    times_zero,
    pop_trackable,
    no_dependency_element,
    nested_after_append,
    dict_int_key_trackable,
    dict_int_key_plain,
    dict_outside_change,
    dict_pop,
    dict_setdefault,
    dict_overwrite_and_delete,
    namedtuple_of_variables,
    namedtuple_not_constructable,
    tuple_with_no_dependency,
    no_dependency_attribute,
]

_REASONS = (
    "A list element was replaced",
    "The wrapped list was modified outside the wrapper",
    "contains a non-string key",
    "The wrapped dictionary was modified outside the wrapper",
    "is not constructable from its _fields",
)


def _outcome(lib: Any, scenario: Callable[[Any], Any], prefix: str) -> str | bytes:
    """The refusal's reason, or the bytes written."""
    try:
        path = lib.Checkpoint(root=scenario(lib)).write(prefix)
    except ValueError as exc:
        reasons = [r for r in _REASONS if r in str(exc)]
        assert len(reasons) == 1 and re.search("Unable to save", str(exc)), str(exc)
        return reasons[0]
    with open(path + ".index", "rb") as f, open(path + ".data-00000-of-00001", "rb") as g:
        return f.read() + g.read()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_same_refusal_or_same_bytes(scenario: Callable[[Any], Any], tmp_path: Any) -> None:
    ours = _outcome(DT, scenario, str(tmp_path / "ours" / "ckpt"))
    theirs = _outcome(TF, scenario, str(tmp_path / "tf" / "ckpt"))
    assert ours == theirs


def test_namedtuple_keys_are_tensorflows(tmp_path: Any) -> None:
    paths = {}
    for name, lib in (("ours", DT), ("tf", TF)):
        paths[name] = lib.Checkpoint(m=namedtuple_of_variables(lib)).write(
            str(tmp_path / name / "ckpt")
        )
    keys = [k for k, _ in dtckpt.list_variables(paths["ours"])]
    assert keys == [k for k, _ in tf.train.list_variables(paths["tf"])]
    assert "m/nt/first/.ATTRIBUTES/VARIABLE_VALUE" in keys
    # Each restores the other's.
    fresh = namedtuple_of_variables(DT)
    dtckpt.Checkpoint(m=fresh).read(paths["tf"]).assert_consumed()
    fresh_tf = namedtuple_of_variables(TF)
    tf.train.Checkpoint(m=fresh_tf).read(paths["ours"]).assert_consumed()


class _NumpyOurs(dtckpt.train.experimental.PythonState):
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def serialize(self) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, self.array, allow_pickle=False)
        return buffer.getvalue()

    def deserialize(self, string_value: bytes) -> None:
        self.array = np.load(io.BytesIO(string_value), allow_pickle=False)


class _NumpyTF(tf.train.experimental.PythonState):
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def serialize(self) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, self.array, allow_pickle=False)
        return buffer.getvalue()

    def deserialize(self, string_value: bytes) -> None:
        self.array = np.load(io.BytesIO(string_value), allow_pickle=False)


def test_python_state_crosses_both_ways(tmp_path: Any) -> None:
    array = np.arange(6, dtype=np.float64).reshape(2, 3)
    ours = dtckpt.Checkpoint(numpy=_NumpyOurs(array)).save(str(tmp_path / "ours" / "ckpt"))
    theirs = tf.train.Checkpoint(numpy=_NumpyTF(array)).save(str(tmp_path / "tf" / "ckpt"))
    assert [k for k, _ in dtckpt.list_variables(ours)] == [
        k for k, _ in tf.train.list_variables(theirs)
    ]
    into_tf = _NumpyTF(np.zeros(1))
    tf.train.Checkpoint(numpy=into_tf).restore(ours).assert_consumed()
    np.testing.assert_array_equal(into_tf.array, array)
    into_ours = _NumpyOurs(np.zeros(1))
    dtckpt.Checkpoint(numpy=into_ours).restore(theirs).assert_consumed()
    np.testing.assert_array_equal(into_ours.array, array)


def test_views_answer_alike(tmp_path: Any) -> None:
    def build(lib: Any) -> Any:
        root = lib.Module()
        root.a = lib.Variable(1.0)
        root.leaf = lib.Module()
        root.leaf.items = [lib.Variable(2.0), {"k": lib.Variable(3.0)}]
        return root

    ours_root, tf_root = build(DT), build(TF)
    ours = dtckpt.train.CheckpointView(
        dtckpt.Checkpoint(ours_root).save(str(tmp_path / "ours" / "ckpt"))
    )
    theirs = tf.train.CheckpointView(tf.train.Checkpoint(tf_root).save(str(tmp_path / "tf" / "ckpt")))
    assert ours.descendants() == theirs.descendants()
    for node in ours.descendants():
        assert ours.children(node) == theirs.children(node)
    assert sorted(ours.match(build(DT))) == sorted(theirs.match(build(TF)))
    assert [type(o).__name__ for o in dtckpt.train.TrackableView(ours_root).descendants()] == [
        type(o).__name__.replace("ResourceVariable", "Variable").replace("_DictWrapper", "DictWrapper")
        for o in tf.train.TrackableView(tf_root).descendants()
    ]


def test_update_checkpoint_state_keeps_absolute_paths(tmp_path: Any) -> None:
    for name, update in (("ours", dtckpt.train.update_checkpoint_state),
                         ("tf", tf.compat.v1.train.update_checkpoint_state)):
        directory = tmp_path / name
        directory.mkdir()
        update(str(directory), str(directory / "model-2"),
               all_model_checkpoint_paths=[str(tmp_path / "elsewhere" / "model-1"),
                                           str(directory / "model-2")])
    ours = (tmp_path / "ours" / "checkpoint").read_text()
    theirs = (tmp_path / "tf" / "checkpoint").read_text()
    assert ours == theirs.replace(str(tmp_path / "tf"), str(tmp_path / "ours"))


def test_set_of_modules_is_dropped_by_tensorflow_and_warned_about_by_dtckpt(tmp_path: Any) -> None:
    def build(lib: Any) -> Any:
        m, inner = lib.Module(), lib.Module()
        inner.v = lib.Variable(1.0)
        m.kept = lib.Variable(2.0)
        m.hidden = {inner}
        return m

    theirs = tf.train.Checkpoint(m=build(TF)).write(str(tmp_path / "tf" / "ckpt"))
    with pytest.warns(dtckpt.errors.UntrackedObjectWarning, match=r"\(root\)\.m\.hidden is a set"):
        ours = dtckpt.Checkpoint(m=build(DT)).write(str(tmp_path / "ours" / "ckpt"))
    with open(ours + ".index", "rb") as f, open(theirs + ".index", "rb") as g:
        assert f.read() == g.read()  # the same (incomplete) checkpoint, but not in silence


# -- random list edits, the same in both libraries ------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.sampled_from(["var", "plain", "list"])),
        st.tuples(st.just("insert"), st.integers(-3, 3), st.sampled_from(["var", "plain"])),
        st.tuples(st.just("setitem"), st.integers(-3, 3), st.sampled_from(["var", "plain"])),
        st.tuples(st.just("setslice"), st.integers(0, 3), st.integers(0, 3),
                  st.lists(st.sampled_from(["var", "plain"]), max_size=3)),
        st.tuples(st.just("delitem"), st.integers(-3, 3)),
        st.tuples(st.just("pop")),
        st.tuples(st.just("reverse")),
        st.tuples(st.just("imul"), st.integers(-1, 2)),
        st.tuples(st.just("outside_append"), st.sampled_from(["var", "plain"])),
        st.tuples(st.just("outside_set"), st.integers(-3, 3), st.sampled_from(["var", "plain"])),
        st.tuples(st.just("inner_append")),
    ),
    max_size=6,
)


def _edit(
    lib: Any, ops: list[tuple[Any, ...]], before_edits: Callable[[Any], None] = lambda m: None
) -> tuple[Any, list[Any]]:
    counter = iter(range(1000))

    def make(kind: str) -> Any:
        if kind == "var":
            # A module holding the variable: TensorFlow's slice assignment compares
            # elements with ``!=``, which a variable answers elementwise (and fails for
            # None); a module compares by identity.
            holder = lib.Module()
            holder.v = lib.Variable(float(next(counter)))
            return holder
        if kind == "list":
            return []
        return next(counter)

    m, held = lib.Module(), [1, make("var"), [make("var")]]
    m.l = held
    before_edits(m)
    for op in ops:
        try:
            if op[0] == "append":
                m.l.append(make(op[1]))
            elif op[0] == "insert":
                m.l.insert(op[1], make(op[2]))
            elif op[0] == "setitem":
                m.l[op[1]] = make(op[2])
            elif op[0] == "setslice":
                m.l[op[1]:op[2]] = [make(k) for k in op[3]]
            elif op[0] == "delitem":
                del m.l[op[1]]
            elif op[0] == "pop":
                m.l.pop()
            elif op[0] == "reverse":
                m.l.reverse()
            elif op[0] == "imul":
                m.l *= op[1]
            elif op[0] == "outside_append":
                held.append(make(op[1]))
            elif op[0] == "outside_set":
                held[op[1]] = make(op[2])
            elif op[0] == "inner_append":
                inner = [x for x in m.l if isinstance(x, list)]
                if inner:
                    inner[0].append(make("var"))
        except IndexError:
            pass
    return m, held


def _shape(value: Any) -> Any:
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if hasattr(value, "v"):
        return ("var", float(value.v.numpy()))
    return value


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(_OPS)
def test_random_list_edits_match_tensorflow(tmp_path: Any, ops: list[tuple[Any, ...]]) -> None:
    ours, ours_held = _edit(DT, ops)
    theirs, theirs_held = _edit(TF, ops)
    assert _shape(list(ours.l)) == _shape(list(theirs.l))
    assert _shape(ours_held) == _shape(theirs_held)
    directory = tmp_path / str(len(os.listdir(tmp_path)))
    assert _outcome(DT, lambda lib: ours, str(directory / "ours")) == _outcome(
        TF, lambda lib: theirs, str(directory / "tf")
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(_OPS)
def test_restore_into_edited_lists_matches_tensorflow(tmp_path: Any, ops: list[tuple[Any, ...]]) -> None:
    """A checkpoint written before the edits, restored after them: the values land in the
    same elements in both libraries (whatever names the edits left)."""
    directory = tmp_path / str(len(os.listdir(tmp_path)))
    paths: dict[str, str] = {}

    def save_first(lib: Any, name: str) -> Callable[[Any], None]:
        def save(m: Any) -> None:
            paths[name] = lib.Checkpoint(root=m).write(str(directory / name))
            for module in [x for x in m.l if hasattr(x, "v")]:
                module.v.assign(-1.0)
        return save

    def restored(lib: Any, m: Any, path: str) -> Any:
        try:
            lib.Checkpoint(root=m).read(path).expect_partial()
        except ValueError as exc:  # a list that cannot be saved cannot be restored either
            return [r for r in _REASONS if r in str(exc)]
        return _shape(list(m.l))

    ours, _ = _edit(DT, ops, save_first(DT, "ours"))
    theirs, _ = _edit(TF, ops, save_first(TF, "tf"))
    assert restored(DT, ours, paths["ours"]) == restored(TF, theirs, paths["tf"])


_DICT_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(["a", "b", 1, (2, 3)]),
                  st.sampled_from(["var", "plain", "list", "nodep"])),
        st.tuples(st.just("del"), st.sampled_from(["a", "b", "z", 1])),
        st.tuples(st.just("pop"), st.sampled_from(["a", "b"])),
        st.tuples(st.just("setdefault"), st.sampled_from(["a", "c"])),
        st.tuples(st.just("update"), st.sampled_from(["a", "d"]), st.sampled_from(["var", "plain"])),
        st.tuples(st.just("outside"), st.sampled_from(["a", "e"])),
        st.tuples(st.just("outside_del"), st.sampled_from(["a", "z"])),
    ),
    max_size=5,
)


class _DictEdits:
    def __init__(self, ops: list[tuple[Any, ...]], before_edits: Callable[[Any], None]) -> None:
        self.ops, self.before_edits = ops, before_edits

    def __call__(self, lib: Any) -> Any:
        ops = self.ops
        counter = iter(range(1000))

        def make(kind: str) -> Any:
            if kind == "var":
                holder = lib.Module()
                holder.v = lib.Variable(float(next(counter)))
                return holder
            if kind == "list":
                return []
            if kind == "nodep":
                return lib.NoDependency([next(counter)])
            return next(counter)

        m, held = lib.Module(), {"a": make("var"), "z": 0}
        m.d = held
        self.before_edits(m)
        for op in ops:
            try:
                if op[0] == "set":
                    m.d[op[1]] = make(op[2])
                elif op[0] == "del":
                    del m.d[op[1]]
                elif op[0] == "pop":
                    m.d.pop(op[1], None)
                elif op[0] == "setdefault":
                    m.d.setdefault(op[1], 5)
                elif op[0] == "update":
                    m.d.update({op[1]: make(op[2])})
                elif op[0] == "outside":
                    held[op[1]] = make("plain")
                else:
                    del held[op[1]]
            except KeyError:
                pass
        return m


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(_DICT_OPS)
def test_random_dict_edits_match_tensorflow(tmp_path: Any, ops: list[tuple[Any, ...]]) -> None:
    directory = tmp_path / str(len(os.listdir(tmp_path)))
    edit = _DictEdits(ops, lambda m: None)
    assert _outcome(DT, edit, str(directory / "ours")) == _outcome(TF, edit, str(directory / "tf"))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(_DICT_OPS)
def test_restore_into_edited_dicts_matches_tensorflow(tmp_path: Any, ops: list[tuple[Any, ...]]) -> None:
    directory = tmp_path / str(len(os.listdir(tmp_path)))
    paths: dict[str, str] = {}
    kept: dict[str, list[Any]] = {}

    def save_first(lib: Any, name: str) -> Callable[[Any], None]:
        def save(m: Any) -> None:
            paths[name] = lib.Checkpoint(root=m).write(str(directory / name))
            kept[name] = [x for x in m.d.values() if hasattr(x, "v")]  # even if deleted later
            for module in kept[name]:
                module.v.assign(-1.0)
        return save

    def restored(lib: Any, m: Any, name: str) -> Any:
        try:
            lib.Checkpoint(root=m).read(paths[name]).expect_partial()
        except ValueError as exc:
            return [r for r in _REASONS if r in str(exc)]
        return [float(x.v.numpy()) for x in kept[name]]

    ours = _DictEdits(ops, save_first(DT, "ours"))(DT)
    theirs = _DictEdits(ops, save_first(TF, "tf"))(TF)
    assert restored(DT, ours, "ours") == restored(TF, theirs, "tf")

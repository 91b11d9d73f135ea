"""Tracked lists, dicts and tuples: shared storage, refusals, namedtuples (rules O-TR-2, O-TR-5..11)."""

from __future__ import annotations

import collections
import copy
import pathlib
import pickle
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt.checkpoint.data_structures import (
    DictWrapper,
    List,
    ListWrapper,
    Mapping,
    NoDependency,
    OrderedDictWrapper,
    TupleWrapper,
    sticky_attribute_assignment,
    wrap_or_unwrap,
)
from dtckpt.checkpoint.module import AutoTrackable
from dtckpt.checkpoint.trackable import (
    Trackable,
    no_automatic_dependency_tracking,
    no_automatic_dependency_tracking_scope,
    no_manual_dependency_tracking_scope,
)
from dtckpt.errors import InvalidArgumentError

REPLACED = "A list element was replaced"
LIST_OUTSIDE = "The wrapped list was modified outside the wrapper"
DICT_OUTSIDE = "The wrapped dictionary was modified outside the wrapper"
NON_STRING = "non-string key"


def var(value: float = 0.0) -> dtckpt.Variable:
    return dtckpt.Variable(np.float32(value))


def save(obj: Any, tmp_path: pathlib.Path, name: str = "ckpt") -> str:
    return str(dtckpt.Checkpoint(m=obj).write(str(tmp_path / name)))


# -- lists: sharing ----------------------------------------------------------------------


def test_list_wrapper_shares_the_callers_list() -> None:
    held: list[Any] = []
    m = dtckpt.Module()
    m.l = held
    assert isinstance(m.l, ListWrapper) and isinstance(m.l, list)
    v = var()
    m.l.append(v)
    assert held == [v] and held[0] is v  # through the wrapper: into the caller's list
    held.append(2)
    assert m.l == [v, 2] and len(m.l) == 2 and list(m.l) == [v, 2]  # and back


def test_list_elements_are_wrapped_in_place() -> None:
    inner: list[Any] = []
    held = [inner, {"k": 1}]
    m = dtckpt.Module()
    m.l = held
    assert isinstance(held[0], ListWrapper) and held[0]._storage is inner
    assert isinstance(held[1], DictWrapper)


def test_outside_append_refuses_save_and_restore(tmp_path: pathlib.Path) -> None:
    held = [var(1.0)]
    m = dtckpt.Module()
    m.l = held
    path = save(m, tmp_path, "before")
    held.append(var(2.0))
    with pytest.raises(InvalidArgumentError, match=rf"\(root\)\.m\.l: Unable to save.*{LIST_OUTSIDE}"):
        save(m, tmp_path)
    with pytest.raises(InvalidArgumentError, match=LIST_OUTSIDE):
        dtckpt.Checkpoint(m=m).read(path)


def test_outside_replacement_is_found_by_the_next_save(tmp_path: pathlib.Path) -> None:
    held = [var(1.0), 3]
    m = dtckpt.Module()
    m.l = held
    held[0] = var(5.0)  # same length: only a full comparison sees it
    m.l.append(4)
    with pytest.raises(InvalidArgumentError, match=LIST_OUTSIDE):
        save(m, tmp_path)
    held2 = [1, 2]
    m.p = held2
    held2[0] = 1  # an equal plain value is no change
    save(m.p, tmp_path, "plain")


# -- lists: which mutations refuse -------------------------------------------------------


def _list_with_trackable() -> ListWrapper:
    return ListWrapper([1, var(1.0), 3, [4]])


REFUSING: list[tuple[str, Callable[[ListWrapper], Any]]] = [
    ("del", lambda l: l.__delitem__(0)),
    ("del slice", lambda l: l.__delitem__(slice(2, 3))),
    ("pop", lambda l: l.pop()),
    ("remove", lambda l: l.remove(3)),
    ("clear", lambda l: l.clear()),
    ("sort", lambda l: l.sort(key=lambda x: 0)),
    ("reverse", lambda l: l.reverse()),
    ("insert plain", lambda l: l.insert(0, 0)),
    ("setitem over trackable", lambda l: l.__setitem__(1, 2)),
    ("slice", lambda l: l.__setitem__(slice(0, 1), [7, 8])),
    ("imul 0", lambda l: l.__imul__(0)),
    ("imul -1", lambda l: l.__imul__(-1)),
]


@pytest.mark.parametrize("name, mutate", REFUSING, ids=[n for n, _ in REFUSING])
def test_mutations_that_move_trackables_refuse(
    name: str, mutate: Callable[[ListWrapper], Any], tmp_path: pathlib.Path
) -> None:
    l = _list_with_trackable()
    path = save(l, tmp_path)
    mutate(l)
    with pytest.raises(InvalidArgumentError, match=f"Unable to save.*{REPLACED}"):
        l._trackable_children()
    with pytest.raises(InvalidArgumentError, match=REPLACED):
        dtckpt.Checkpoint(m=l).read(path)  # a restore binding it refuses too
    with pytest.raises(InvalidArgumentError, match=REPLACED):
        copy.copy(l)._trackable_children()  # and copies keep the refusal


def test_inserting_a_trackable_refuses_even_into_a_plain_list() -> None:
    l = ListWrapper([1, 2])
    l.insert(0, var())
    with pytest.raises(InvalidArgumentError, match=REPLACED):
        l._trackable_children()


def test_plain_lists_change_freely() -> None:
    l = ListWrapper([3, 1, 2])
    l.insert(0, 0)
    del l[0]
    l.sort()
    l.reverse()
    l[0:2] = [9, 8, 7]
    l *= 0
    assert l == [] and l._trackable_children() == {}


def test_appends_keep_positions_as_names() -> None:
    a, b = var(), var()
    l = ListWrapper([1, a])
    l.extend([2])
    l += [b]
    assert l._trackable_children() == {"1": a, "3": b}
    l *= 2
    assert l._trackable_children() == {"1": a, "3": b, "5": a, "7": b}


def test_reverse_keeping_the_only_trackable_in_the_middle_is_fine() -> None:
    v = var()
    l = ListWrapper([1, v, 3])
    l.reverse()
    assert l == [3, v, 1] and l._trackable_children() == {"1": v}


def test_item_assignment_names_as_tensorflow() -> None:
    a, b, c = var(), var(), var()
    l = ListWrapper([None, None, None])
    l[2] = a
    l[0] = b
    assert list(l._trackable_children().items()) == [("2", a), ("0", b)]  # tracking order
    n = ListWrapper([1, 2, 3])
    n[-1] = c
    assert n._trackable_children() == {"-1": c}  # the index as written


def test_slice_over_plain_values_tracks_by_position() -> None:
    a, b = var(), var()
    l = ListWrapper([1, 2, 3, 4])
    l[1:3] = [a, 7, b]
    assert l == [1, a, 7, b, 4] and l._trackable_children() == {"1": a, "3": b}
    with pytest.raises(ValueError, match="extended slice"):
        l[::2] = [1]


def test_setting_items_then_restoring_fills_the_same_elements(tmp_path: pathlib.Path) -> None:
    m = dtckpt.Module()
    m.l = [None, None]
    m.l[1] = var(1.0)
    m.l[0] = var(2.0)
    path = save(m, tmp_path)
    fresh = dtckpt.Module()
    fresh.l = [None, None]
    fresh.l[1] = var()
    fresh.l[0] = var()
    dtckpt.Checkpoint(m=fresh).read(path).assert_consumed()
    assert [float(v.numpy()) for v in fresh.l] == [2.0, 1.0]


def test_no_dependency_element_is_stored_but_not_a_child() -> None:
    a, b, c = var(), var(), var()
    l = ListWrapper([a, NoDependency(b)])
    l.append(c)
    assert l == [a, b, c] and l._trackable_children() == {"0": a, "2": c}
    assert list(l._child_trackables()) == [a, c]


def test_insert_stores_the_value_as_given() -> None:
    l = ListWrapper([1])
    l.insert(0, [])
    assert type(l[0]) is list  # TensorFlow does not wrap what insert stores


def test_list_wrapper_overrides_every_list_method() -> None:
    skipped = {"__new__", "__init__", "__subclasshook__", "__getattribute__", "__init_subclass__"}
    for name in dir(list):
        method = getattr(list, name)
        if name in skipped or not callable(method) or getattr(object, name, None) == method:
            continue
        assert getattr(ListWrapper, name) != method, name


def test_list_wrapper_behaves_like_a_list() -> None:
    a = AutoTrackable()
    w = ListWrapper([a, 2])
    assert w == [a, 2] and [a, 2] == w and w != [2, a]
    assert w + [3] == [a, 2, 3] and [0] + w == [0, a, 2] and 2 * w == [a, 2, a, 2]
    assert w[1:] == [2] and type(w[1:]) is list and 2 in w and w.index(2) == 1
    assert w.count(a) == 1 and list(reversed(w)) == [2, a]
    assert ListWrapper([1]) < ListWrapper([1, 2]) <= [1, 2] and [2] > ListWrapper([1])
    assert repr(ListWrapper([1])) == "ListWrapper([1])"
    with pytest.raises(TypeError, match="unhashable type: 'ListWrapper'"):
        hash(w)
    assert pickle.loads(pickle.dumps(ListWrapper([1, 2]))) == [1, 2]
    assert "".join(ListWrapper(["a", "b"])) == "ab"  # C-level readers see the contents


def test_list_copies() -> None:
    inner: list[Any] = [1.0]
    w = ListWrapper([inner])
    shallow, deep, method = copy.copy(w), copy.deepcopy(w), w.copy()
    assert shallow[0] is w[0] and method[0] is w[0] and deep[0] is not w[0]
    assert isinstance(shallow, ListWrapper) and deep == [[1.0]]
    shallow.append(2)
    assert w == [[1.0]]


# -- lists: nothing scrambled, whatever the edits ----------------------------------------

_EDITS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.booleans()),
        st.tuples(st.just("insert"), st.integers(-4, 4), st.booleans()),
        st.tuples(st.just("set"), st.integers(-4, 4), st.booleans()),
        st.tuples(st.just("slice"), st.integers(0, 4), st.integers(0, 4),
                  st.lists(st.booleans(), max_size=3)),
        st.tuples(st.just("del"), st.integers(-4, 4)),
        st.tuples(st.just("reverse")),
        st.tuples(st.just("imul"), st.integers(-1, 2)),
        st.tuples(st.just("outside"), st.booleans()),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(_EDITS)
def test_random_edits_keep_list_semantics_and_never_scramble(edits: list[tuple[Any, ...]]) -> None:
    """The wrapper always holds what a plain list would; when it saves, each saved name
    restores into the element at that position of a list rebuilt by appending, or into
    nothing (never into another element)."""
    counter = iter(range(1, 10_000))

    def make(trackable: bool) -> Any:
        return var(float(next(counter))) if trackable else -next(counter)

    held: list[Any] = [make(True), 0]
    model = list(held)
    m = dtckpt.Module()
    m.l = held
    for edit in edits:
        values = [make(t) for t in edit[3]] if edit[0] == "slice" else None
        item = make(edit[-1]) if edit[0] in ("append", "insert", "set", "outside") else None
        for target in (m.l, model):
            try:
                if edit[0] == "append":
                    target.append(item)
                elif edit[0] == "insert":
                    target.insert(edit[1], item)
                elif edit[0] == "set":
                    target[edit[1]] = item
                elif edit[0] == "slice":
                    target[edit[1]:edit[2]] = values
                elif edit[0] == "del":
                    del target[edit[1]]
                elif edit[0] == "reverse":
                    target.reverse()
                elif edit[0] == "imul":
                    target *= edit[1]
                elif target is model:
                    model.append(item)
                else:
                    held.append(item)
            except IndexError:
                pass
        assert list(m.l) == model and held == model
    try:
        children = m.l._trackable_children()
    except InvalidArgumentError:
        return
    rebuilt = [var(-1.0) if isinstance(x, dtckpt.Variable) else x for x in model]
    for name, child in children.items():
        index = int(name)
        target_value = rebuilt[index] if 0 <= index < len(rebuilt) else None
        if isinstance(target_value, dtckpt.Variable):
            assert model[index] is child  # the name is the element's position


# -- dicts ---------------------------------------------------------------------------------


def test_dict_wrapper_shares_the_callers_dict(tmp_path: pathlib.Path) -> None:
    held: dict[Any, Any] = {"a": 1}
    m = dtckpt.Module()
    m.d = held
    assert isinstance(m.d, DictWrapper) and isinstance(m.d, dict)
    v = var()
    m.d["v"] = v
    assert held["v"] is v
    held["b"] = 2
    assert m.d["b"] == 2 and dict(m.d) == held and {**m.d} == held and len(m.d) == 3
    with pytest.raises(InvalidArgumentError, match=DICT_OUTSIDE):
        save(m, tmp_path)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("a"),
        lambda d: d.popitem(),
        lambda d: d.clear(),
        lambda d: d.setdefault("new", []),
        lambda d: d.__ior__({"c": 3}),
    ],
    ids=["pop", "popitem", "clear", "setdefault", "ior"],
)
def test_dict_methods_that_bypass_the_wrapper_refuse(
    mutate: Callable[[Any], Any], tmp_path: pathlib.Path
) -> None:
    d = DictWrapper({"a": 1, "b": var()})
    path = save(d, tmp_path)
    mutate(d)
    with pytest.raises(InvalidArgumentError, match=DICT_OUTSIDE):
        d._trackable_children()
    with pytest.raises(InvalidArgumentError, match=DICT_OUTSIDE):
        dtckpt.Checkpoint(m=d).read(path)


def test_dict_changes_through_the_wrapper_are_fine() -> None:
    a, b, c = var(), var(), var()
    d = DictWrapper({"a": a, "x": 1})
    d["a"] = b  # overwrite keeps the position
    del d["x"]
    d.update(c=c)
    d.setdefault("a", 5)  # the key exists: nothing changes
    assert list(d._trackable_children().items()) == [("a", b), ("c", c)]


@pytest.mark.parametrize(
    "items",
    [{1: var(), "1": var()}, {(1, 2): [var()]}, {1: []}],
    ids=["int and str key", "tuple key", "wrapped list"],
)
def test_non_string_keys_holding_trackables_refuse(items: dict[Any, Any], tmp_path: pathlib.Path) -> None:
    m = dtckpt.Module()
    m.d = items
    with pytest.raises(InvalidArgumentError, match=NON_STRING):
        save(m, tmp_path)
    m.e = {}
    m.e[2] = var()  # through __setitem__ as well
    with pytest.raises(InvalidArgumentError, match=NON_STRING):
        m.e._trackable_children()


def test_dict_children_are_named_as_tensorflow_names_them(tmp_path: pathlib.Path) -> None:
    a, b, c, d = var(1.0), var(2.0), var(3.0), var(4.0)
    w = DictWrapper({"x": 0, "a": a, "b": b, "d": d})
    w["x"] = c  # the first trackable under "x": after the others
    del w["a"]  # a deleted child is still saved under its key
    w["b"] = 5  # so is one given a plain value
    w["d"] = NoDependency(var())  # and one given a NoDependency
    assert list(w._trackable_children().items()) == [("a", a), ("b", b), ("d", d), ("x", c)]
    path = save(w, tmp_path)
    fresh = DictWrapper({"a": var(), "b": var(), "d": var(), "x": var()})
    dtckpt.Checkpoint(m=fresh).read(path).assert_consumed()
    assert [float(v.numpy()) for v in fresh.values()] == [1.0, 2.0, 4.0, 3.0]
    w["a"] = a2 = var()  # another trackable takes the name, in place
    assert list(w._trackable_children())[0] == "a" and w._trackable_children()["a"] is a2


def test_non_string_keys_with_plain_values_are_fine() -> None:
    v = var()
    d = DictWrapper({1: 3, (1, 2): "x", "v": v})
    d[4] = NoDependency([])
    d[5] = NoDependency(var())
    assert type(d[4]) is list and d._trackable_children() == {"v": v}


def test_no_dependency_value_under_a_string_key() -> None:
    a, b = var(), var()
    d = DictWrapper({"a": NoDependency(a), "b": b})
    assert d["a"] is a and d._trackable_children() == {"b": b}
    d["a"] = a  # tracked now
    assert d._trackable_children() == {"a": a, "b": b}


def test_dict_copies_and_pickle() -> None:
    d = DictWrapper({"a": [1.0]})
    assert copy.copy(d)["a"] is d["a"] and d.copy()["a"] is d["a"]
    assert copy.deepcopy(d)["a"] is not d["a"] and isinstance(d.copy(), DictWrapper)
    assert pickle.loads(pickle.dumps(DictWrapper({"a": 1}))) == {"a": 1}
    assert DictWrapper([(1, 2), (3, 4)]) == {1: 2, 3: 4}
    with pytest.raises(TypeError, match="unhashable type: 'DictWrapper'"):
        hash(d)
    outside: dict[str, Any] = {"a": 1}
    w = DictWrapper(outside)
    outside["b"] = 2
    with pytest.raises(InvalidArgumentError, match=DICT_OUTSIDE):
        copy.copy(w)._trackable_children() if w._trackable_children() else None
    with pytest.raises(InvalidArgumentError, match=DICT_OUTSIDE):
        copy.deepcopy(w)._trackable_children()


def test_ordered_dict_stays_an_ordered_dict() -> None:
    v = var()
    m = dtckpt.Module()
    m.d = collections.OrderedDict([("b", 1), ("a", v)])
    assert isinstance(m.d, OrderedDictWrapper) and isinstance(m.d, collections.OrderedDict)
    m.d.move_to_end("b")
    assert list(m.d) == ["a", "b"] and m.d._trackable_children() == {"a": v}
    assert m.d != collections.OrderedDict([("b", 1), ("a", v)])  # OrderedDict equality


# -- tuples and namedtuples --------------------------------------------------------------


class Point(NamedTuple):
    x: Any
    y: Any


class Weighted(collections.namedtuple("Weighted", ["x", "weights"])):
    pass


def test_namedtuple_is_wrapped_and_keeps_its_type(tmp_path: pathlib.Path) -> None:
    v = var(3.0)
    m = dtckpt.Module()
    m.p = Point(x=v, y=[var(4.0)])
    assert isinstance(m.p, Point) and isinstance(m.p, TupleWrapper) and isinstance(m.p, tuple)
    assert m.p.x is v and m.p[0] is v and isinstance(m.p.y, ListWrapper)
    assert list(m.p._trackable_children()) == ["x", "y", "0", "1"]
    assert m.p == Point(v, m.p.y)
    modules = (dtckpt.Module(), dtckpt.Module())
    assert hash(TupleWrapper(Point(*modules))) == hash(Point(*modules))
    keys = [k for k, _ in dtckpt.list_variables(save(m, tmp_path))]
    assert "m/p/x/.ATTRIBUTES/VARIABLE_VALUE" in keys and "m/p/y/0/.ATTRIBUTES/VARIABLE_VALUE" in keys
    assert type(m.p._replace(x=1)) is Point and type(type(m.p)(1, 2)) is Point
    assert repr(m.p).startswith("_TupleWrapper(Point(x=")
    assert copy.copy(m.p) == m.p and copy.deepcopy(m.p).x is not v
    restored = pickle.loads(pickle.dumps(TupleWrapper(Point(1, [2]))))
    assert isinstance(restored, Point) and restored == (1, [2]) and isinstance(restored.y, ListWrapper)


def test_restore_into_a_namedtuple(tmp_path: pathlib.Path) -> None:
    m = dtckpt.Module()
    m.p = Point(var(1.0), var(2.0))
    path = save(m, tmp_path)
    fresh = dtckpt.Module()
    fresh.p = Point(var(), var())
    dtckpt.Checkpoint(m=fresh).read(path).assert_consumed()
    assert (float(fresh.p.x.numpy()), float(fresh.p.y.numpy())) == (1.0, 2.0)


def test_namedtuple_fields_beat_wrapper_properties() -> None:
    w = TupleWrapper(Weighted(var(), 3))
    assert w.weights == 3 and isinstance(w, Weighted)


def test_tuple_subclasses_with_their_own_new_and_properties() -> None:
    v = var(2.0)

    class Shifted(collections.namedtuple("Shifted", ["x", "y"])):
        def __new__(cls, x: Any, y: Any) -> Shifted:
            return super().__new__(cls, x, 3)

        @property
        def summed(self) -> Any:
            return self.x + self.y

    class Pairish(tuple):  # noqa: SLOT001
        @property
        def first(self) -> Any:
            return self[0]

    w = TupleWrapper(Shifted(x=v, y=2))
    assert w.y == 3 and float(w.summed) == 5.0 and {"x", "0"} <= set(w._trackable_children())
    p = TupleWrapper(Pairish([v, 2]))
    assert isinstance(p, Pairish) and p.first is v and p._trackable_children() == {"0": v}


def test_namedtuple_not_constructable_from_its_fields_refuses(tmp_path: pathlib.Path) -> None:
    class CustomNew(collections.namedtuple("CustomNew", ["x"])):
        def __new__(cls) -> CustomNew:
            return super().__new__(cls, [])

    m = dtckpt.Module()
    m.nt = CustomNew()
    m.nt.x.append(var())
    assert type(m.nt.x) is list  # kept as given
    with pytest.raises(InvalidArgumentError, match="not constructable from its _fields"):
        save(m, tmp_path)


def test_plain_tuples_and_no_dependency_elements() -> None:
    assert type(wrap_or_unwrap((1, "a"))) is tuple
    a, b = var(), var()
    w = wrap_or_unwrap((NoDependency(a), b))
    assert w == (a, b) and w._trackable_children() == {"1": b}
    assert wrap_or_unwrap(((((var(),),),),))._trackable_children().keys() == {"0"}


def test_deep_and_shared_tuples_need_no_recursion() -> None:
    deep: tuple[Any, ...] = (var(),)
    for _ in range(50_000):
        deep = (deep,)
    assert isinstance(wrap_or_unwrap((deep, 1)), TupleWrapper)
    shared: tuple[Any, ...] = (1,)
    for _ in range(200):  # 2**200 paths, 200 distinct tuples
        shared = (shared, shared)
    assert type(wrap_or_unwrap(shared)) is tuple


def test_tuple_operations_give_plain_tuples() -> None:
    v = var()
    w = TupleWrapper((v,))
    original = w
    w *= 2
    assert w == (v, v) and type(w) is tuple and original == (v,)
    assert original + (1,) == (v, 1) and original[0:] == (v,) and 2 * original == (v, v)
    assert len({TupleWrapper(), TupleWrapper()}) == 1


# -- NoDependency and turning tracking off ------------------------------------------------


def test_no_dependency_attribute_and_sticky_assignment() -> None:
    m = dtckpt.Module()
    kept = dtckpt.Module()
    m.kept = NoDependency(kept)
    m.items = NoDependency([1])
    assert m.kept is kept and type(m.items) is list and m._trackable_children() == {}
    other = AutoTrackable()
    value = sticky_attribute_assignment(other, "l", [])
    assert isinstance(value, ListWrapper) and other._lookup_dependency("l") is value
    assert type(sticky_attribute_assignment(other, "n", NoDependency([]))) is list
    assert other._lookup_dependency("n") is None


def test_no_automatic_dependency_tracking() -> None:
    class Quiet(dtckpt.Module):
        @no_automatic_dependency_tracking
        def __init__(self) -> None:
            super().__init__()
            self.a: Any = []
            self.b = dtckpt.Module()

    q = Quiet()
    assert type(q.a) is list and q._trackable_children() == {}
    q.c = []  # tracking is back after the method
    assert isinstance(q.c, ListWrapper) and list(q._trackable_children()) == ["c"]
    with no_automatic_dependency_tracking_scope(q):
        q.d = []
    assert type(q.d) is list and "d" not in q._trackable_children()


def test_no_manual_dependency_tracking_scope() -> None:
    t = Trackable()
    with no_manual_dependency_tracking_scope(t):
        t._track_trackable(Trackable(), "x")
    assert t._trackable_children() == {}


# -- _track_trackable --------------------------------------------------------------------


def test_track_trackable_contract() -> None:
    root, leaf, other = Trackable(), Trackable(), Trackable()
    assert root._track_trackable(leaf, "leaf") is leaf
    root._track_trackable(leaf, "leaf")  # the same object again: nothing happens
    with pytest.raises(ValueError, match="name='leaf', but a Trackable with this name is already"):
        root._track_trackable(other, "leaf")
    root._track_trackable(Trackable(), "second")
    root._track_trackable(other, "leaf", overwrite=True)
    assert list(root._trackable_children().items())[0] == ("leaf", other)  # in place
    with pytest.raises(TypeError, match="can only be used to track objects of type Trackable"):
        root._track_trackable(1, "x")  # type: ignore[arg-type]
    refs = root._unconditional_checkpoint_dependencies
    assert [r.name for r in refs] == ["leaf", "second"] and refs[0] == ("leaf", other)


def test_attribute_deletion_removes_the_dependency() -> None:
    m = AutoTrackable()
    m.a = AutoTrackable()
    assert len(m._unconditional_checkpoint_dependencies) == 1
    del m.a
    assert not hasattr(m, "a") and m._trackable_children() == {}
    m.a = AutoTrackable()
    assert list(m._trackable_children()) == ["a"]


def test_attribute_assignment_replaces_a_dependency() -> None:
    m = AutoTrackable()
    m.leaf = AutoTrackable()
    second = AutoTrackable()
    m.leaf = second
    assert m._lookup_dependency("leaf") is second


# -- List and Mapping (TensorFlow's internal containers) ------------------------------------


def test_list_is_append_only_and_takes_trackables_only() -> None:
    v = var()
    l = List([v])
    with pytest.raises(InvalidArgumentError, match="may be stored in a List"):
        List([object()])
    with pytest.raises(InvalidArgumentError, match="multiplying in place by 0"):
        l *= 0
    with pytest.raises(AttributeError):
        l.pop()  # type: ignore[attr-defined]
    l *= 2
    assert list(l) == [v, v] and l._trackable_children() == {"0": v, "1": v}
    assert l[1:] == [v] and type(l * 2) is list and len({List(), List()}) == 2
    assert list(l.copy()) == [v, v] and l.copy() is not l


def test_mapping_is_append_only_with_string_keys() -> None:
    m = Mapping()
    first = List()
    m["a"] = first
    with pytest.raises(InvalidArgumentError, match="append-only"):
        m["a"] = List()
    with pytest.raises(TypeError, match="only string keys"):
        m[1] = List()
    with pytest.raises(AttributeError):
        del m["a"]  # type: ignore[attr-defined]
    assert m["a"] is first and m._trackable_children() == {"a": first}


def test_aggregate_variable_properties() -> None:
    a, b = var(), dtckpt.Variable(np.float32(0), trainable=False)
    inner = dtckpt.Module()
    inner.w = var()
    l = ListWrapper([a, [b], inner])
    assert l.trainable_variables == [inner.w, a] and l.non_trainable_variables == [b]
    assert l.variables == [inner.w, a, b] and l.layers == [] and l.updates == []
    l.trainable = False
    assert l.trainable_variables == [] and l.non_trainable_variables == [inner.w, a, b]
    deep: list[Any] = [a]
    for _ in range(5000):
        deep = [deep]
    assert ListWrapper(deep).variables == [a]  # no recursion


# -- trackables a save cannot reach (O-TR-10) ------------------------------------------------


def _hidden_module() -> dtckpt.Module:
    hidden = dtckpt.Module()
    hidden.v = var()
    return hidden


class _ListSubclass(list):  # noqa: FURB189
    pass


HIDING: list[tuple[str, Callable[[Any], Any]]] = [
    ("set", lambda h: {h}),
    ("frozenset", lambda h: frozenset([h])),
    ("list subclass", lambda h: _ListSubclass([h])),
    ("defaultdict", lambda h: collections.defaultdict(list, a=h)),
    ("deque", lambda h: collections.deque([h])),
    ("tuple of a set", lambda h: (1, {h})),
    ("namespace", lambda h: __import__("types").SimpleNamespace(h=h)),
    ("object array", lambda h: np.array([h], dtype=object)),
]


@pytest.mark.parametrize("kind, hide", HIDING, ids=[k for k, _ in HIDING])
def test_save_warns_about_trackables_it_cannot_reach(
    kind: str, hide: Callable[[Any], Any], tmp_path: pathlib.Path
) -> None:
    m = dtckpt.Module()
    m.hidden = hide(_hidden_module())
    with pytest.warns(dtckpt.errors.UntrackedObjectWarning, match=r"\(root\)\.m\.hidden is a"):
        save(m, tmp_path)


def test_dataclass_and_raw_inserted_list_are_searched(tmp_path: pathlib.Path) -> None:
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Config:
        model: Any

    m = dtckpt.Module()
    m.config = Config(_hidden_module())
    with pytest.warns(dtckpt.errors.UntrackedObjectWarning, match=r"m\.config is a Config"):
        save(m, tmp_path, "a")
    n = dtckpt.Module()
    n.l = [1]
    n.l.insert(0, [])
    n.l[0].append(var())
    with pytest.warns(dtckpt.errors.UntrackedObjectWarning, match=r"m\.l\[0\] is a list"):
        save(n, tmp_path, "b")


def test_no_warning_when_reachable_or_left_out_on_purpose(
    tmp_path: pathlib.Path, recwarn: pytest.WarningsRecorder
) -> None:
    m = dtckpt.Module()
    shared = _hidden_module()
    m.saved = shared
    m.lookup = {shared}  # saved anyway, through m.saved
    m.kept = NoDependency({_hidden_module()})
    m.l = [NoDependency([_hidden_module()])]
    m.d = {"a": NoDependency({_hidden_module()})}
    with no_automatic_dependency_tracking_scope(m):
        m.quiet = {_hidden_module()}
    save(m, tmp_path)
    assert not [w for w in recwarn if issubclass(w.category, dtckpt.errors.UntrackedObjectWarning)]


def test_variables_are_unhashable_so_sets_cannot_hide_them() -> None:
    with pytest.raises(TypeError, match="Variable is unhashable"):
        {var()}  # noqa: B018

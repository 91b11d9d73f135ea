"""tf.train.Checkpoint and dtckpt.Checkpoint on the same object structures.

Random structures (modules holding variables, lists, dicts with awkward keys,
tuples, shared references, empty containers) are built once in each library:
the files must be byte-identical, and each library must restore the other's
checkpoint with ``assert_consumed()``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("tensorflow")
import tensorflow as tf  # noqa: E402

import dtckpt  # noqa: E402

DTYPES = ["float32", "float64", "int64", "int32", "bfloat16", "string", "bool"]
keys = st.text(st.sampled_from("ab/._ z"), min_size=1, max_size=4)


@st.composite
def values(draw: st.DrawFn) -> dict[str, Any]:
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    size = int(np.prod(shape))
    if dtype == "string":
        data = [draw(st.binary(max_size=5)) for _ in range(size)]
    elif dtype == "bool":
        data = [draw(st.booleans()) for _ in range(size)]
    else:
        data = [draw(st.integers(-100, 100)) for _ in range(size)]
    return {"kind": "variable", "dtype": dtype, "shape": shape, "data": data,
            "name": draw(st.none() | st.sampled_from(["w", "kernel", "a/b"])),
            "trainable": draw(st.booleans())}


def nodes(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    if depth == 0:
        return values()
    child = nodes(depth - 1)
    return st.one_of(
        values(),
        st.builds(lambda a: {"kind": "module", "attrs": a},
                  st.lists(st.tuples(st.sampled_from(["x", "y", "layer", "b", "a"]), child),
                           max_size=3, unique_by=lambda t: t[0])),
        st.builds(lambda a: {"kind": "list", "items": a}, st.lists(child, max_size=3)),
        st.builds(lambda a: {"kind": "tuple", "items": a}, st.lists(child, max_size=2)),
        st.builds(lambda a: {"kind": "dict", "items": a},
                  st.lists(st.tuples(keys, child), max_size=3, unique_by=lambda t: t[0])),
    )


structures = st.builds(
    lambda attrs, share: {"attrs": attrs, "share": share},
    st.lists(st.tuples(st.sampled_from(["model", "opt", "extra", "net"]), nodes(2)),
             min_size=1, max_size=3, unique_by=lambda t: t[0]),
    st.booleans(),
)


def _array(spec: dict[str, Any]) -> np.ndarray:
    if spec["dtype"] == "string":
        out = np.empty(len(spec["data"]), dtype=object)
        out[:] = spec["data"]
        return out.reshape(spec["shape"])
    return np.array(spec["data"], dtype=dtckpt.dtypes.info(spec["dtype"]).numpy).reshape(spec["shape"])


def build(lib: Any, spec: dict[str, Any]) -> Any:
    kind = spec["kind"]
    if kind == "variable":
        value = _array(spec)
        if lib is tf:
            return tf.Variable(tf.constant(value, dtype=spec["dtype"] if spec["dtype"] != "string" else tf.string),
                               name=spec["name"], trainable=spec["trainable"])
        return dtckpt.Variable(value, name=spec["name"], trainable=spec["trainable"])
    if kind == "module":
        module = lib.Module()
        for name, child in spec["attrs"]:
            setattr(module, name, build(lib, child))
        return module
    if kind == "list":
        return [build(lib, c) for c in spec["items"]]
    if kind == "tuple":
        return tuple(build(lib, c) for c in spec["items"])
    return {k: build(lib, c) for k, c in spec["items"]}


def build_checkpoint(lib: Any, structure: dict[str, Any]) -> Any:
    objects = {name: build(lib, spec) for name, spec in structure["attrs"]}
    if structure["share"]:
        first = next(iter(objects.values()))
        objects["shared"] = first  # the same object under a second name
    holder = lib.Module()
    for name, obj in objects.items():
        setattr(holder, name, obj)
    Checkpoint = tf.train.Checkpoint if lib is tf else dtckpt.Checkpoint
    return Checkpoint(root=holder) if structure["share"] else Checkpoint(holder=holder)


def _same_files(a: str, b: str) -> None:
    for suffix in (".index", ".data-00000-of-00001"):
        with open(a + suffix, "rb") as fa, open(b + suffix, "rb") as fb:
            assert fa.read() == fb.read(), suffix


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structures, st.sampled_from(["write", "save"]))
def test_same_structure_same_bytes_and_cross_restore(structure: dict[str, Any], method: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ours = build_checkpoint(dtckpt, structure)
        theirs = build_checkpoint(tf, structure)
        p_ours = getattr(ours, method)(os.path.join(tmp, "ours", "ckpt"))
        p_theirs = getattr(theirs, method)(os.path.join(tmp, "tf", "ckpt"))
        _same_files(p_ours, p_theirs)
        if method == "save":
            with open(os.path.join(tmp, "ours", "checkpoint")) as fa, open(
                os.path.join(tmp, "tf", "checkpoint")
            ) as fb:
                assert fa.read() == fb.read()
        # Each library restores the other's checkpoint into fresh objects.
        fresh_tf = build_checkpoint(tf, structure)
        reader = getattr(fresh_tf, "restore" if method == "save" else "read")
        reader(p_ours).assert_consumed()
        fresh_ours = build_checkpoint(dtckpt, structure)
        reader = getattr(fresh_ours, "restore" if method == "save" else "read")
        reader(p_theirs).assert_consumed()
        # Values came across: re-writing gives the same bytes again.
        again = fresh_ours.write(os.path.join(tmp, "again", "ckpt"))
        original = ours.write(os.path.join(tmp, "orig", "ckpt"))
        _same_files(again, original)


def test_tf_restores_dtckpt_values(tmp_path: Any) -> None:
    m = dtckpt.Module()
    m.kernel = dtckpt.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="kernel")
    m.layers = [dtckpt.Variable(np.int64(5)), {"a/b.c": dtckpt.Variable(b"text")}]
    path = dtckpt.Checkpoint(model=m).save(str(tmp_path / "ckpt"))
    t = tf.Module()
    t.kernel = tf.Variable(tf.zeros((2, 3)))
    t.layers = [tf.Variable(tf.constant(0, tf.int64)), {"a/b.c": tf.Variable(b"")}]
    ckpt = tf.train.Checkpoint(model=t)
    ckpt.restore(tf.train.latest_checkpoint(str(tmp_path))).assert_consumed()
    assert path == tf.train.latest_checkpoint(str(tmp_path))
    assert t.kernel.numpy().tolist() == m.kernel.numpy().tolist()
    assert int(t.layers[0].numpy()) == 5 and t.layers[1]["a/b.c"].numpy() == b"text"
    assert int(ckpt.save_counter.numpy()) == 1


def _signature(variables: Any) -> list[tuple[str, tuple[int, ...], bytes, bool]]:
    out = []
    for v in variables:
        value = v.numpy()
        if isinstance(value, bytes) or np.asarray(value).dtype.kind in "OS":
            value = np.asarray(value, dtype=object)  # TF gives a scalar string as plain bytes
        data = b"|".join(value.reshape(-1).tolist()) if value.dtype == object else value.tobytes()
        out.append((str(value.dtype), tuple(value.shape), data, bool(v.trainable)))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structures)
def test_module_variables_order_matches_tf(structure: dict[str, Any]) -> None:
    def holder(lib: Any) -> Any:
        module = lib.Module()
        for name, spec in structure["attrs"]:
            setattr(module, name, build(lib, spec))
        return module

    ours, theirs = holder(dtckpt), holder(tf)
    assert _signature(ours.variables) == _signature(theirs.variables)
    assert _signature(ours.trainable_variables) == _signature(theirs.trainable_variables)

"""DTensor checkpoints against TF's, on 8 virtual CPUs.

Random meshes, layouts, dtypes and shapes: for ``tf.train.Checkpoint`` with
DVariables and for ``DTensorCheckpoint``, dtckpt's index holds TF's entries
(every field but the offset inside a data file, whose order TF varies from run
to run), with TF's data file names and sizes; and each library restores the
other's checkpoint into a different mesh and layout.
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
from tensorflow.experimental import dtensor as tfd  # noqa: E402

import dtckpt  # noqa: E402
from dtckpt import dtensor as dd  # noqa: E402

MESHES = [[("x", 8)], [("x", 2), ("y", 4)], [("a", 4), ("b", 2)], [("p", 2), ("q", 2), ("r", 2)]]
DTYPES = ["float32", "int32", "int64", "float64", "bfloat16"]


@st.composite
def variables(draw: st.DrawFn, dims: list[tuple[str, int]]) -> list[dict[str, Any]]:
    names = [dd.UNSHARDED, *[n for n, _ in dims]]
    sizes = dict(dims)
    out = []
    for index in range(draw(st.integers(1, 3))):
        rank = draw(st.integers(1, 2))
        specs = draw(
            st.lists(st.sampled_from(names), min_size=rank, max_size=rank).filter(
                lambda s: len([x for x in s if x != dd.UNSHARDED])
                == len({x for x in s if x != dd.UNSHARDED})
            )
        )
        shape = [sizes.get(s, 1) * draw(st.integers(1, 2)) for s in specs]
        out.append({"name": f"v{index}", "specs": specs, "shape": shape,
                    "dtype": draw(st.sampled_from(DTYPES))})
    return out


def _value(spec: dict[str, Any]) -> np.ndarray:
    count = int(np.prod(spec["shape"]))
    np_dtype = dckpt_dtype(spec["dtype"])
    return (np.arange(count) - count // 2).astype(np_dtype).reshape(spec["shape"])


def dckpt_dtype(name: str) -> Any:
    return dtckpt.dtypes.info(name).numpy


def build_tf(dims: list[tuple[str, int]], specs: list[dict[str, Any]], zero: bool, layouts: Any = None) -> Any:
    mesh = tfd.create_mesh(dims, device_type="CPU", devices=[f"CPU:{i}" for i in range(8)])
    module = tf.Module()
    for spec in specs:
        value = _value(spec) * (0 if zero else 1)
        rep = tfd.Layout.replicated(mesh, rank=value.ndim)
        layout_specs = (layouts or {}).get(spec["name"], spec["specs"])
        tensor = tfd.relayout(tfd.copy_to_mesh(tf.constant(value, dtype=spec["dtype"]), rep),
                              tfd.Layout(layout_specs, mesh))
        setattr(module, spec["name"], tfd.DVariable(tensor))
    return module, mesh


def build_ours(dims: list[tuple[str, int]], specs: list[dict[str, Any]], zero: bool, layouts: Any = None) -> Any:
    mesh = dd.create_mesh(dims, device_type="CPU")
    module = dtckpt.Module()
    for spec in specs:
        value = _value(spec) * (0 if zero else 1)
        layout_specs = (layouts or {}).get(spec["name"], spec["specs"])
        setattr(module, spec["name"], dd.DVariable(dd.copy_to_mesh(value, dd.Layout(layout_specs, mesh))))
    return module, mesh


def _same_entries_and_files(ours: str, theirs: str) -> None:
    a, b = dtckpt.BundleReader(ours), dtckpt.BundleReader(theirs)
    assert a.header == b.header
    assert a.raw_keys() == b.raw_keys()
    for key in b.raw_keys():
        assert a.entry(key)._replace(offset=0) == b.entry(key)._replace(offset=0), key

    def sizes(prefix: str) -> dict[str, int]:
        directory, base = os.path.split(prefix)
        return {f: os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
                if f.startswith(base + ".data-")}

    assert sizes(ours) == sizes(theirs)


def _other_layouts(specs: list[dict[str, Any]], dims: list[tuple[str, int]]) -> dict[str, list[str]]:
    """A different layout per variable on another mesh: every dimension unsharded or on the
    largest dimension that divides it."""
    out = {}
    for spec in specs:
        used: set[str] = set()
        layout = []
        for size in spec["shape"]:
            choice = dd.UNSHARDED
            for name, n in sorted(dims, key=lambda d: -d[1]):
                if name not in used and size % n == 0:
                    choice = name
                    used.add(name)
                    break
            layout.append(choice)
        out[spec["name"]] = layout[::-1] if len(layout) == 2 and layout[0] == layout[1] else layout
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MESHES).flatmap(lambda dims: st.tuples(st.just(dims), variables(dims))),
       st.sampled_from(["write", "save", "dtensor_checkpoint"]),
       st.sampled_from(MESHES))
def test_entries_files_and_cross_restores(case: Any, method: str, other_dims: Any) -> None:
    dims, specs = case
    with tempfile.TemporaryDirectory() as tmp:
        ours_module, ours_mesh = build_ours(dims, specs, zero=False)
        tf_module, tf_mesh = build_tf(dims, specs, zero=False)
        if method == "dtensor_checkpoint":
            p_ours = dd.DTensorCheckpoint(ours_mesh, model=ours_module).save(os.path.join(tmp, "o", "c"))
            p_tf = tfd.DTensorCheckpoint(tf_mesh, model=tf_module).save(os.path.join(tmp, "t", "c"))
        else:
            p_ours = getattr(dtckpt.Checkpoint(model=ours_module), method)(os.path.join(tmp, "o", "c"))
            p_tf = getattr(tf.train.Checkpoint(model=tf_module), method)(os.path.join(tmp, "t", "c"))
        _same_entries_and_files(p_ours, p_tf)
        # Each restores the other's checkpoint into another mesh and layout.
        layouts = _other_layouts(specs, other_dims)
        fresh_ours, _ = build_ours(other_dims, specs, zero=True, layouts=layouts)
        dtckpt.Checkpoint(model=fresh_ours).read(p_tf).expect_partial()
        fresh_tf, _ = build_tf(other_dims, specs, zero=True, layouts=layouts)
        tf.train.Checkpoint(model=fresh_tf).read(p_ours).expect_partial()
        for spec in specs:
            expected = _value(spec)
            assert np.array_equal(getattr(fresh_ours, spec["name"]).numpy(), expected), spec
            var = getattr(fresh_tf, spec["name"])
            whole = tfd.relayout(var.read_value(), tfd.Layout.replicated(var.layout.mesh, len(spec["shape"])))
            theirs = tfd.unpack(whole)[0].numpy()
            assert theirs.tobytes() == expected.tobytes(), spec

"""One model, saved and restored by any number of clients (rank programs and their checks).

Every value is a fixed function of the variable's name and a tag, so a client can
check the blocks it restored without seeing the others', and a single process can
build the same state to compare files with.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import dtckpt
from dtckpt import dtensor as dd
from dtckpt.mesh import device_box

U = dd.UNSHARDED

# name -> (shape, dtype); layouts are given per mesh.
SPECS: dict[str, tuple[tuple[int, ...], str]] = {
    "w": ((8, 8), "float32"),
    "k": ((4, 8), "float64"),
    "r": ((8,), "int64"),
    "h": ((8, 4), "bfloat16"),
    "e": ((16, 8), "int32"),
}

# Layouts by mesh dimension names.
LAYOUTS: dict[str, dict[str, list[str]]] = {
    "x,y": {"w": ["x", "y"], "k": [U, "y"], "r": [U], "h": ["y", U], "e": ["x", U]},
    "a,b": {"w": ["b", "a"], "k": ["b", U], "r": ["a"], "h": [U, "b"], "e": [U, "a"]},
    "p": {"w": [U, "p"], "k": [U, "p"], "r": ["p"], "h": ["p", U], "e": ["p", U]},
}


def value(name: str, tag: int) -> np.ndarray:
    shape, dtype = SPECS[name]
    count = int(np.prod(shape))
    base = (np.arange(count) * (ord(name) % 7 + 1) + tag * 1000) % 4093 - 2000
    return base.astype(dtckpt.dtypes.info(dtype).numpy).reshape(shape)


def mesh_for(dims: list[list[Any]], clients: int) -> dd.Mesh:
    """The mesh ``dims`` over ``clients`` clients (one process: a simulated mesh)."""
    if clients == 1:
        return dd.create_mesh([(n, int(s)) for n, s in dims])
    size = int(np.prod([s for _, s in dims]))
    dd.set_num_local_devices("CPU", size // clients)
    return dd.create_distributed_mesh([(n, int(s)) for n, s in dims])


def build(mesh: dd.Mesh, tag: int) -> tuple[dtckpt.Module, dtckpt.Variable]:
    layouts = LAYOUTS[",".join(mesh.dim_names)]
    model = dtckpt.Module(name="model")
    for name in SPECS:
        layout = dd.Layout(layouts[name], mesh)
        setattr(model, name, dd.DVariable(value(name, tag), layout=layout, name=name))
    model.step = dtckpt.Variable(np.int64(tag), name="step")
    model.note = dtckpt.Variable(np.array(f"tag {tag}".encode(), dtype=object), name="note")
    return model, model.step


def check(model: dtckpt.Module, tag: int) -> None:
    """Every local block of every variable holds the values of ``tag``."""
    assert int(model.step.numpy()) == tag, (int(model.step.numpy()), tag)
    assert model.note.numpy().item() == f"tag {tag}".encode()
    for name in SPECS:
        variable = getattr(model, name)
        expected = value(name, tag)
        tensor = variable.read_value()
        for device, block in zip(tensor.local_devices, tensor.components, strict=True):
            box = device_box(variable.layout, variable.shape, device)
            want = expected[tuple(slice(s, s + n) for s, n in box)]
            assert block.dtype == want.dtype and block.tobytes() == want.tobytes(), (
                name,
                device,
            )


def files(directory: str) -> dict[str, bytes]:
    """Every checkpoint file of ``directory`` (index and data) with its bytes."""
    out = {}
    for name in sorted(os.listdir(directory)):
        if ".index" in name or ".data-" in name:
            with open(os.path.join(directory, name), "rb") as f:
                out[name] = f.read()
    return out

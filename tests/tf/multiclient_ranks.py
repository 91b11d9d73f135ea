"""dtckpt's side of the TensorFlow multi-client cross-checks: rank programs and the model.

The model is TensorFlow's and dtckpt's alike: unnamed DVariables (so that both object
graphs hold the same names) on a mesh of two dimensions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import dtckpt
from dtckpt import dtensor as dd
from dtckpt.comm import world
from dtckpt.mesh import device_box
from tests.dtensor.multiclient_model import LAYOUTS, mesh_for, value

CROSS_NAMES = ("e", "h", "k", "r", "w")


def cross_value(name: str, tag: int) -> np.ndarray:
    return value(name, tag)


def cross_layout(name: str, dim_names: list[str]) -> list[str]:
    return LAYOUTS[",".join(dim_names)][name]


def _module(mesh: dd.Mesh, tag: int) -> dtckpt.Module:
    module = dtckpt.Module()
    for name in CROSS_NAMES:
        layout = dd.Layout(cross_layout(name, mesh.dim_names), mesh)
        setattr(module, name, dd.DVariable(cross_value(name, tag), layout=layout))
    return module


def save(path: str, dims: list[list[Any]], tag: int, writers: str = "lowest") -> None:
    mesh = mesh_for(dims, world().size)
    options = dtckpt.CheckpointOptions(experimental_writers=writers)
    dtckpt.Checkpoint(model=_module(mesh, tag)).write(path, options=options)


def restore(path: str, dims: list[list[Any]], tag: int) -> None:
    mesh = mesh_for(dims, world().size)
    module = _module(mesh, 0)
    dtckpt.Checkpoint(model=module).read(path).assert_consumed()
    for name in CROSS_NAMES:
        variable = getattr(module, name)
        expected = cross_value(name, tag)
        tensor = variable.read_value()
        for device, block in zip(tensor.local_devices, tensor.components, strict=True):
            box = device_box(variable.layout, variable.shape, device)
            want = expected[tuple(slice(s, s + n) for s, n in box)]
            assert block.tobytes() == want.tobytes(), (name, device)

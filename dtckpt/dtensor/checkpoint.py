"""Saving DTensors as TensorFlow does: one bundle per device, then a merge (rules D-CK-1, D-CK-2).

::

    DVariable w, layout [x, y] on a 2x4 mesh, shape [4, 8]
       device d writes block (2*x_d .. , 2*y_d ..) under "4 8 r,2:c,2" into its own bundle
    regular values (save_counter) and the object graph: their own bundle (tf.train.Checkpoint)
       or device 0's bundle (DTensorCheckpoint)
    MergeV2Checkpoints, inputs taken device by device:
       [device 0's DTensor part, the regular part, device 1, ..., device N-1]
       -> PREFIX.data-00000-of-0000K ... as ordinary data shards

No block is ever gathered into the whole tensor: each device's block goes
straight into its bundle. Within each bundle, tensors follow the object
graph's breadth-first order (TensorFlow's own order there varies from run to
run), so the same state always gives the same bytes.

The per-device bundles live in ``PREFIX_temp/``, a temporary of rule S-TP-1:
the caller holds the directory lock for the whole save (rule S-LK-1), the
merge commits the final files atomically (rule S-AT-1), and a ``PREFIX_temp``
left by a crash is removed by the next save (rule S-TP-2). The directory is
made exclusively and only the files the save wrote are removed from it: a
user's own directory or link of that name is refused, never deleted (S-TP-4).
"""

from __future__ import annotations

import os
from concurrent.futures import wait
from typing import Any

import numpy as np

from ..checkpoint.checkpoint import Checkpoint
from ..errors import InvalidArgumentError
from ..format.bundle_writer import BundleWriter
from ..format.durable import SHARDED_TEMP_SUFFIX, create_sharded_temp, remove_sharded_temp
from ..format.merge import merge_bundles
from ..mesh import Mesh, slice_spec, unique_shards
from ..pools import pool
from .tensor import DTensor

__all__ = ["write_sharded", "DTensorCheckpoint"]

_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


def _device_suffix(device: int, count: int) -> str:
    return f"_dev-{device:0{len(str(count))}d}-of-{count}"


def write_sharded(
    path: str,
    tensors: list[tuple[str, Any]],
    graph_bytes: bytes,
    *,
    regular_on_device_zero: bool,
    fsync: bool = False,
) -> None:
    """Write ``tensors`` (some of them DTensors) at ``path`` as TF's DTensor saving does.

    With ``fsync`` the device bundles' data and the merged files are fsynced
    before they are renamed into place (rule S-AT-2).
    """
    meshes = {v.layout.mesh for _, v in tensors if isinstance(v, DTensor)}
    if len(meshes) != 1:
        raise InvalidArgumentError(
            f"a DTensor checkpoint needs all DTensors on one mesh, found {len(meshes)} meshes"
        )
    mesh: Mesh = meshes.pop()
    count = mesh.size
    per_device: dict[int, list[tuple[str, str, Any]]] = {}
    regular: list[tuple[str, str, Any]] = []
    dtensor_first = isinstance(tensors[0][1], DTensor) if tensors else True
    for key, value in tensors:
        if isinstance(value, DTensor):
            if value.layout.is_fully_replicated():
                per_device.setdefault(0, []).append((key, "", value.components[0]))
                continue
            for _box, device in unique_shards(value.layout, value.shape):
                spec = slice_spec(value.layout, value.shape, device)
                per_device.setdefault(device, []).append((key, spec, value.components[device]))
        elif regular_on_device_zero:
            per_device.setdefault(0, []).append((key, "", value))
        else:
            regular.append((key, "", value))
    graph = np.array(graph_bytes, dtype=object)
    if regular_on_device_zero:
        per_device.setdefault(0, []).append((_OBJECT_GRAPH, "", graph))
    else:
        regular.append((_OBJECT_GRAPH, "", graph))

    temp = f"{path}{SHARDED_TEMP_SUFFIX}"
    parts = 1 if regular_on_device_zero else 2
    dtensor_part = 0 if (dtensor_first or regular_on_device_zero) else 1
    regular_prefix = os.path.join(temp, f"part-{1 - dtensor_part:05d}-of-{parts:05d}")
    order: list[str] = []
    jobs: list[tuple[str, list[tuple[str, str, Any]]]] = []
    for device in range(count):
        entries = []
        items = per_device.get(device)
        if items:
            prefix = os.path.join(
                temp, f"part-{dtensor_part:05d}-of-{parts:05d}" + _device_suffix(device, count)
            )
            jobs.append((prefix, items))
            entries.append((dtensor_part, prefix))
        if device == 0 and regular:
            jobs.append((regular_prefix, regular))
            entries.append((1 - dtensor_part, regular_prefix))
        order.extend(prefix for _, prefix in sorted(entries))
    # Rule S-TP-4: a directory of our own, made exclusively; removing it touches only the
    # files the device writers made, so a user's directory of that name is never deleted.
    create_sharded_temp(path)
    try:
        # The devices write their bundles at the same time, as they would on real
        # hardware; writes and checksums release the GIL.
        writers = pool("io")
        futures = [writers.submit(_write_bundle, prefix, items, fsync) for prefix, items in jobs]
        # Every writer finishes before the first error is raised, so that none is
        # still creating files in the temporary directory when it is removed.
        wait(futures)
        for done in futures:
            done.result()
        merge_bundles(order, path, fsync=fsync)
    finally:
        remove_sharded_temp(temp)


def _write_bundle(prefix: str, items: list[tuple[str, str, Any]], fsync: bool) -> None:
    from ..format.slices import parse_shape_and_slice

    with BundleWriter(prefix, fsync=fsync) as writer:
        for key, spec, value in items:
            parsed = parse_shape_and_slice(spec)
            if parsed is None:
                writer.add(key, value)
            else:
                writer.add_slice(key, parsed[0], parsed[1], value)


class DTensorCheckpoint(Checkpoint):
    """``DTensorCheckpoint(mesh, root=None, **kwargs)``, as in ``tf.experimental.dtensor``.

    Like :class:`~dtckpt.Checkpoint`, but non-DTensor values (``save_counter``,
    the object graph) are saved by device 0 of ``mesh`` in its own bundle, as
    TensorFlow's DTensor saver does (rule D-CK-2). TensorFlow deprecates this
    class in favour of ``tf.train.Checkpoint`` with DVariables, which
    :class:`~dtckpt.Checkpoint` also supports.
    """

    def __init__(self, mesh: Mesh, root: Any = None, **kwargs: Any) -> None:
        if not isinstance(mesh, Mesh):
            raise InvalidArgumentError(f"DTensorCheckpoint needs a Mesh, got {mesh!r}")
        object.__setattr__(self, "_self_mesh", mesh)
        super().__init__(root, **kwargs)

    @property
    def mesh(self) -> Mesh:
        mesh: Mesh = self._self_mesh  # type: ignore[attr-defined]
        return mesh

    _regular_on_device_zero = True

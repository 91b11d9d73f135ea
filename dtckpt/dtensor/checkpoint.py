"""Saving DTensors as TensorFlow does: one data file per device, one index (rules D-CK-1, D-CK-2).

::

    DVariable w, layout [x, y] on a 2x4 mesh, shape [4, 8]
       device d writes block (2*x_d .. , 2*y_d ..) under "4 8 r,2:c,2" into its own data file
    regular values (save_counter) and the object graph: their own data file
       (tf.train.Checkpoint) or device 0's (DTensorCheckpoint)
    data files numbered as MergeV2Checkpoints numbers TensorFlow's per-device bundles:
       [device 0's DTensor part, the regular part, device 1, ..., device N-1]
       -> PREFIX.data-00000-of-0000K ... and one PREFIX.index

No block is ever gathered into the whole tensor: each device's block goes
straight into its data file, written by the client that owns the device.
Within each data file, tensors follow the object graph's breadth-first order
(TensorFlow's own order there varies from run to run), so the same state
always gives the same bytes, whatever the number of clients.

The save itself is :func:`dtckpt.checkpoint.collective_save.save_collectively`
(rule P-SV-2): data files under their final names first, the index last.
"""

from __future__ import annotations

from typing import Any

from ..checkpoint.checkpoint import Checkpoint
from ..checkpoint.collective_save import graph_tensor, save_collectively
from ..checkpoint.options import COLLECTIVE_TIMEOUT
from ..comm import world
from ..errors import InvalidArgumentError
from ..mesh import Mesh

__all__ = ["write_sharded", "DTensorCheckpoint"]

_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


def write_sharded(
    path: str,
    tensors: list[tuple[str, Any]],
    graph_bytes: bytes,
    *,
    regular_on_device_zero: bool,
    fsync: bool = False,
    writers: str = "lowest",
    timeout: float = COLLECTIVE_TIMEOUT,
) -> None:
    """Write ``tensors`` (some of them DTensors) and an object graph at ``path``, as TF does.

    Collective: with several clients each calls it with its own local blocks.
    With ``fsync`` every file is fsynced before it is renamed into place (rule S-AT-2).
    """
    save_collectively(
        path,
        [*tensors, (_OBJECT_GRAPH, graph_tensor(graph_bytes))],
        comm=world(),
        timeout=timeout,
        regular_on_device_zero=regular_on_device_zero,
        writers=writers,
        fsync=fsync,
    )


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

"""Which client owns which device of a mesh (rule D-CF-3): the checkpoint layer's ``Placement``.

::

    mesh 2x4, 4 clients, 2 devices each (create_distributed_mesh)
    offsets   0 1 | 2 3 | 4 5 | 6 7
    client      0 |   1 |   2 |   3

Client ``c`` of ``n`` owns the offsets ``[c * s / n, (c + 1) * s / n)`` of a mesh
of ``s`` devices, as :func:`~dtckpt.dtensor.create_distributed_mesh` lays them
out (and as TensorFlow does). A mesh whose local devices are not this client's
share in that sense cannot be saved or restored collectively: the other clients
could not tell who writes its blocks. A single-process mesh is client 0's whole.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ..errors import InvalidArgumentError
from ..mesh import Mesh, local_offsets
from . import config

__all__ = ["MeshPlacement", "placement_of"]


class MeshPlacement:
    """A mesh with its devices divided among ``num_clients`` clients."""

    __slots__ = ("mesh", "num_clients", "_share")

    def __init__(self, mesh: Mesh, num_clients: int) -> None:
        self.mesh = mesh
        self.num_clients = int(num_clients)
        if self.num_clients < 1 or mesh.size % self.num_clients:
            raise InvalidArgumentError(
                f"a mesh of {mesh.size} devices cannot be shared evenly by "
                f"{self.num_clients} clients"
            )
        self._share = mesh.size // self.num_clients

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    @property
    def local_devices(self) -> Sequence[int]:
        return local_offsets(self.mesh)

    def client_of(self, device: int) -> int:
        return int(device) // self._share

    def devices_of(self, client: int) -> range:
        return range(client * self._share, (client + 1) * self._share)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MeshPlacement)
            and other.num_clients == self.num_clients
            and other.mesh == self.mesh
        )

    def __hash__(self) -> int:
        return hash((self.mesh, self.num_clients))

    def __repr__(self) -> str:
        return f"MeshPlacement({self.mesh.to_string()!r}, clients={self.num_clients})"


def placement_of(mesh: Mesh) -> MeshPlacement:
    """``mesh`` shared by this program's clients; its local devices must be this client's share."""
    return _placement(mesh, config.num_clients(), config.client_id())


@functools.lru_cache(maxsize=64)
def _placement(mesh: Mesh, clients: int, client: int) -> MeshPlacement:
    placement = MeshPlacement(mesh, clients)
    expected = placement.devices_of(client)
    local = tuple(local_offsets(mesh))
    if local != tuple(expected):
        raise InvalidArgumentError(
            f"client {client} of {clients} should hold the mesh "
            f"offsets {expected.start}..{expected.stop - 1}, but the mesh's local devices are at "
            f"{list(local)[:8]}{'...' if len(local) > 8 else ''}: build meshes shared by "
            "several clients with create_distributed_mesh"
        )
    return placement

"""``Layout``: how each tensor dimension maps onto a mesh (rule M-LA-1).

A layout has one *sharding spec* per tensor dimension: a mesh dimension name
(the tensor dimension is split evenly across that mesh dimension) or
``UNSHARDED`` (every device holds the whole dimension). A mesh dimension may
shard at most one tensor dimension; mesh dimensions used by no tensor
dimension replicate the tensor. String form, exactly as TensorFlow writes it::

    sharding_specs:x,unsharded, mesh:|x=2,y=4|...
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidArgumentError
from .mesh import Mesh

__all__ = ["Layout", "UNSHARDED", "MATCH"]

UNSHARDED = "unsharded"
MATCH = "match"
_PREFIX = "sharding_specs:"
_MESH = " mesh:"


class Layout:
    """``Layout(sharding_specs, mesh)``."""

    def __init__(self, sharding_specs: Sequence[str], mesh: Mesh) -> None:
        if not isinstance(mesh, Mesh):
            raise InvalidArgumentError(f"Layout needs a Mesh, got {mesh!r}")
        specs = [str(s) for s in sharding_specs]
        for spec in specs:
            if spec not in (UNSHARDED, MATCH) and not mesh.contains_dim(spec):
                raise InvalidArgumentError(
                    f"{spec}: A dimension sharding must either be a valid mesh dimension or "
                    f"UNSHARDED (mesh dimensions: {mesh.dim_names})."
                )
        used = [s for s in specs if s not in (UNSHARDED, MATCH)]
        for spec in used:
            if used.count(spec) > 1:
                raise InvalidArgumentError(
                    f"Mesh dimension {spec} was repeated in sharding specification {specs}. "
                    "Mesh dimensions must be unique in a layout."
                )
        self._specs = specs
        self._mesh = mesh

    @property
    def sharding_specs(self) -> list[str]:
        return list(self._specs)

    @property
    def mesh(self) -> Mesh:
        return self._mesh

    @property
    def rank(self) -> int:
        return len(self._specs)

    def num_shards(self, idx: int) -> int:
        """How many pieces tensor dimension ``idx`` is cut into."""
        spec = self._specs[idx]
        return 1 if spec in (UNSHARDED, MATCH) else self._mesh.dim_size(spec)

    def is_fully_replicated(self) -> bool:
        return all(s == UNSHARDED for s in self._specs)

    def offset_to_shard(self) -> list[tuple[int, ...]]:
        """For each device (mesh order), the index of its shard along each tensor dimension."""
        names = self._mesh.dim_names
        out = []
        for device_id in self._mesh.global_device_ids().reshape(-1).tolist():
            coords = self._mesh.device_location(device_id)
            out.append(
                tuple(0 if s in (UNSHARDED, MATCH) else coords[names.index(s)] for s in self._specs)
            )
        return out

    def local_shape_from_global_shape(self, global_shape: Sequence[int]) -> tuple[int, ...]:
        """The shape of each device's shard; every sharded dimension must divide evenly."""
        shape = tuple(int(d) for d in global_shape)
        if len(shape) != self.rank:
            raise InvalidArgumentError(
                f"tensor of rank {len(shape)} (shape {list(shape)}) cannot use a layout of "
                f"rank {self.rank}: {self._specs}"
            )
        out = []
        for dim, (size, spec) in enumerate(zip(shape, self._specs, strict=True)):
            shards = self.num_shards(dim)
            if size % shards:
                raise InvalidArgumentError(
                    f"dimension {dim} of size {size} cannot be split evenly across mesh "
                    f"dimension {spec!r} of size {shards}"
                )
            out.append(size // shards)
        return tuple(out)

    def global_shape_from_local_shape(self, local_shape: Sequence[int]) -> tuple[int, ...]:
        if len(local_shape) != self.rank:
            raise InvalidArgumentError(f"local shape {list(local_shape)} has the wrong rank")
        return tuple(int(d) * self.num_shards(i) for i, d in enumerate(local_shape))

    # -- constructors ----------------------------------------------------------
    @classmethod
    def replicated(cls, mesh: Mesh, rank: int) -> Layout:
        return cls([UNSHARDED] * rank, mesh)

    @classmethod
    def batch_sharded(cls, mesh: Mesh, batch_dim: str, rank: int, axis: int = 0) -> Layout:
        specs = [UNSHARDED] * rank
        specs[axis] = batch_dim
        return cls(specs, mesh)

    @classmethod
    def inner_sharded(cls, mesh: Mesh, inner_dim: str, rank: int) -> Layout:
        return cls.batch_sharded(mesh, inner_dim, rank, axis=rank - 1)

    # -- strings -----------------------------------------------------------------
    def to_string(self) -> str:
        return _PREFIX + "".join(s + "," for s in self._specs) + _MESH + self._mesh.to_string()

    @classmethod
    def from_string(cls, text: str) -> Layout:
        """Parse TF's layout string; anything malformed is an :class:`InvalidArgumentError`,
        also a ``ValueError`` as TF raises (rule H-ER-1)."""
        if not text.startswith(_PREFIX) or _MESH not in text:
            raise InvalidArgumentError(f"not a layout string: {text!r}")
        specs_text, mesh_text = text[len(_PREFIX) :].split(_MESH, 1)
        if specs_text and not specs_text.endswith(","):
            raise InvalidArgumentError(f"sharding specs must end with ',': {text!r}")
        specs = specs_text[:-1].split(",") if specs_text else []
        return cls(specs, Mesh.from_string(mesh_text))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and other.to_string() == self.to_string()

    def __hash__(self) -> int:
        return hash(self.to_string())

    def __repr__(self) -> str:
        return f"Layout({self._specs}, {self._mesh!r})"

"""``Layout``: how each tensor dimension maps onto a mesh (rules M-LA-1, M-LA-2).

A layout has one *sharding spec* per tensor dimension: a mesh dimension name
(the tensor dimension is split evenly across that mesh dimension) or
``UNSHARDED`` (every device holds the whole dimension). A mesh dimension may
shard at most one tensor dimension; mesh dimensions used by no tensor
dimension replicate the tensor. String forms, exactly as TensorFlow writes them::

    sharding_specs:x,unsharded, mesh:|x=2,y=4|...      a static layout
    parted:x,unsharded, mesh:|x=2,y=4|...              its parted twin (``to_parted``)
    maximal:true, mesh:/job:localhost/replica:0/task:0/device:CPU:0    a single-device layout
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidArgumentError
from .mesh import Mesh
from .proto import LayoutProto, ShardingSpec

__all__ = ["Layout", "LayoutType", "UNSHARDED", "MATCH"]

UNSHARDED = "unsharded"
MATCH = "match"
_MESH = " mesh:"


class LayoutType(enum.IntEnum):
    """A layout's kind; the values are ``LayoutProto.type``'s."""

    STATIC = 1
    PARTED = 2
    SINGLE_DEVICE = 3


_PREFIXES = {
    LayoutType.STATIC: "sharding_specs:",
    LayoutType.PARTED: "parted:",
    LayoutType.SINGLE_DEVICE: "maximal:",
}
_SINGLE_BODY = "true,"


class Layout:
    """``Layout(sharding_specs, mesh)``, TensorFlow's ``dtensor.Layout``."""

    def __init__(self, sharding_specs: Sequence[str], mesh: Mesh) -> None:
        self._init(sharding_specs, mesh, LayoutType.STATIC)

    def _init(self, sharding_specs: Sequence[str], mesh: Mesh, kind: LayoutType) -> None:
        if not isinstance(mesh, Mesh):
            raise InvalidArgumentError("mesh is not a valid Mesh object.")
        specs = [str(s) for s in sharding_specs]
        counts = Counter(specs)
        for spec in specs:
            if spec in (UNSHARDED, MATCH):
                continue
            if counts[spec] > 1:
                raise InvalidArgumentError(
                    f"Mesh dimension {spec} was repeated in sharding specification {specs}. "
                    "Mesh dimensions must be unique in a layout."
                )
            if not mesh.contains_dim(spec):
                raise InvalidArgumentError(
                    f"{spec}: A dimension sharding must either be a valid mesh dimension or "
                    "UNSHARDED."
                )
        if mesh.is_single_device() != (kind == LayoutType.SINGLE_DEVICE):
            raise InvalidArgumentError(
                "a single-device mesh takes a single-device layout "
                "(Layout.from_single_device_mesh), and only it does"
            )
        self._specs = specs
        self._mesh = mesh
        self._type = kind
        self._text: str | None = None

    @classmethod
    def _of_type(cls, sharding_specs: Sequence[str], mesh: Mesh, kind: LayoutType) -> Layout:
        layout = cls.__new__(cls)
        layout._init(sharding_specs, mesh, kind)
        return layout

    # -- properties --------------------------------------------------------------
    @property
    def sharding_specs(self) -> list[str]:
        return list(self._specs)

    @property
    def mesh(self) -> Mesh:
        return self._mesh

    @property
    def rank(self) -> int:
        return len(self._specs)

    @property
    def type(self) -> LayoutType:
        return self._type

    @property
    def shape(self) -> list[int]:
        """The mesh's shape."""
        return self._mesh.shape()

    def num_shards(self, idx: int) -> int:
        """How many pieces tensor dimension ``idx`` is cut into."""
        if not -self.rank <= idx < self.rank:
            raise InvalidArgumentError(f"dimension {idx} is outside a layout of rank {self.rank}")
        spec = self._specs[idx]
        return 1 if spec in (UNSHARDED, MATCH) else self._mesh.dim_size(spec)

    def is_fully_replicated(self) -> bool:
        return all(s == UNSHARDED for s in self._specs)

    def is_batch_parallel(self) -> bool:
        """Sharded along the first dimension only (as TensorFlow's ``IsBatchParallel``)."""
        return (
            bool(self._specs)
            and self._specs[0] != UNSHARDED
            and all(s == UNSHARDED for s in self._specs[1:])
        )

    def is_single_device(self) -> bool:
        return self._type == LayoutType.SINGLE_DEVICE

    def offset_to_shard(self) -> list[tuple[int, ...]]:
        """For each device (mesh order), the index of its shard along each tensor dimension."""
        mesh = self._mesh
        names = mesh.dim_names
        shape, strides = mesh.shape(), mesh.strides
        axes = [names.index(s) if s not in (UNSHARDED, MATCH) else -1 for s in self._specs]
        return [
            tuple(0 if a < 0 else (offset // strides[a]) % shape[a] for a in axes)
            for offset in range(mesh.size)
        ]

    def offset_tuple_to_global_index(self, offset_tuple: Sequence[int]) -> int:
        """The row-major index of a shard among all shards, from its per-dimension indices."""
        index = 0
        for dim, offset in enumerate(offset_tuple):
            index = index * self.num_shards(dim) + int(offset)
        return index

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
            raise InvalidArgumentError(
                f"local shape {list(local_shape)} does not have the layout's rank {self.rank}"
            )
        return tuple(int(d) * self.num_shards(i) for i, d in enumerate(local_shape))

    # -- constructors ----------------------------------------------------------
    @classmethod
    def replicated(cls, mesh: Mesh, rank: int) -> Layout:
        return cls([UNSHARDED] * int(rank), mesh)

    @classmethod
    def batch_sharded(cls, mesh: Mesh, batch_dim: str, rank: int, axis: int = 0) -> Layout:
        specs = [UNSHARDED] * int(rank)
        if not -len(specs) <= axis < len(specs):
            raise InvalidArgumentError(f"axis {axis} is outside a layout of rank {rank}")
        specs[axis] = batch_dim
        return cls(specs, mesh)

    @classmethod
    def inner_sharded(cls, mesh: Mesh, inner_dim: str, rank: int) -> Layout:
        return cls.batch_sharded(mesh, inner_dim, rank, axis=rank - 1)

    @classmethod
    def from_single_device_mesh(cls, mesh: Mesh) -> Layout:
        """The layout of a tensor held whole by the single device of ``mesh``."""
        return cls._of_type([], mesh, LayoutType.SINGLE_DEVICE)

    @classmethod
    def from_device(cls, device: str) -> Layout:
        return cls.from_single_device_mesh(Mesh.from_device(device))

    def to_parted(self) -> Layout:
        """The parted twin of this layout: same specs and mesh, type ``PARTED``."""
        if self._type == LayoutType.SINGLE_DEVICE:
            raise InvalidArgumentError("a single-device layout has no parted form")
        return Layout._of_type(self._specs, self._mesh, LayoutType.PARTED)

    def delete(self, dims: int | Sequence[int]) -> Layout:
        """This layout without the tensor dimensions ``dims``."""
        drop = {int(dims)} if isinstance(dims, int) else {int(d) for d in dims}
        return Layout([s for i, s in enumerate(self._specs) if i not in drop], self._mesh)

    # -- strings and protos -----------------------------------------------------------
    def to_string(self) -> str:
        if self._text is None:  # built once: a layout never changes, and its mesh neither
            if self._type == LayoutType.SINGLE_DEVICE:
                body = _SINGLE_BODY
            else:
                body = "".join(s + "," for s in self._specs)
            self._text = _PREFIXES[self._type] + body + _MESH + self._mesh.to_string()
        return self._text

    @classmethod
    def from_string(cls, layout_str: str) -> Layout:
        """Parse TF's layout string; anything malformed is an :class:`InvalidArgumentError`,
        also a ``ValueError`` as TF raises (rule H-ER-1)."""
        text = str(layout_str)
        kind = next((k for k, p in _PREFIXES.items() if text.startswith(p)), None)
        if kind is None or _MESH not in text:
            raise InvalidArgumentError(f"not a layout string: {text!r}")
        specs_text, mesh_text = text[len(_PREFIXES[kind]) :].split(_MESH, 1)
        mesh = Mesh.from_string(mesh_text)
        if kind == LayoutType.SINGLE_DEVICE:
            if specs_text != _SINGLE_BODY:
                raise InvalidArgumentError(f"bad single-device layout string: {text!r}")
            return cls._of_type([], mesh, kind)
        if specs_text and not specs_text.endswith(","):
            raise InvalidArgumentError(f"sharding specs must end with ',': {text!r}")
        specs = specs_text[:-1].split(",") if specs_text else []
        return cls._of_type(specs, mesh, kind)

    def as_proto(self) -> LayoutProto:
        return LayoutProto(
            sharding_specs=tuple(ShardingSpec(s) for s in self._specs),
            mesh_config=self._mesh.as_proto(),
            type=int(self._type),
        )

    @classmethod
    def from_proto(cls, layout_proto: LayoutProto | bytes) -> Layout:
        """A layout from a :class:`LayoutProto` (or its serialized bytes)."""
        proto = layout_proto
        if not isinstance(proto, LayoutProto):
            proto = LayoutProto.FromString(bytes(proto))
        try:
            kind = LayoutType(proto.type)
        except ValueError:
            raise InvalidArgumentError(f"LayoutProto of unknown type {proto.type}") from None
        mesh = Mesh.from_proto(proto.mesh_config)
        return cls._of_type([s.sharding_spec for s in proto.sharding_specs], mesh, kind)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and other.to_string() == self.to_string()

    def __hash__(self) -> int:
        return hash(self.to_string())

    def __repr__(self) -> str:
        return f"Layout.from_string({self.to_string()})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Layout.from_string, (self.to_string(),))

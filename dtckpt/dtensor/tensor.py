"""DTensors: one NumPy array per local device of a mesh (rules D-TE-1 to D-TE-5).

A DTensor has a global (logical) shape, a dtype and a :class:`Layout`; the
device at offset ``d`` of the layout's mesh holds the block :func:`device_box`
gives it. A process holds the arrays of its own devices only: every device of
a simulated single-process mesh, or its share of a mesh spread over several
clients (``create_distributed_mesh``). Replicas hold equal but separate
arrays, so writing into one never changes another. ``relayout`` moves data
between layouts block by block: each target block is pasted from the source
blocks it overlaps, without building the whole tensor.

A DTensor is a :class:`~dtckpt.checkpoint.sharded.ShardedValue`: checkpoints
ask it for its blocks and their holders (rule P-SV-1), never for the whole.

Arithmetic works block by block too (rule D-TE-3): ``a + b`` of two DTensors
with the same layout adds their components device by device and keeps the
layout; a Python number or NumPy scalar is applied to every component.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import kernels
from ..checkpoint.sharded import Block
from ..errors import InvalidArgumentError, UnimplementedError
from ..format.bundle_writer import as_tensor
from ..format.messages import FULL_LENGTH
from ..format.slices import intersect
from ..mesh import (
    MATCH,
    UNSHARDED,
    Layout,
    LayoutType,
    device_box,
    local_offsets,
    overlapping_blocks,
)
from ..mesh.geometry import unique_shards
from .placement import MeshPlacement, placement_of

__all__ = ["DTensor", "as_array", "blocks_of", "relayout_dtensor", "to_dtensor"]

Box = tuple[tuple[int, int], ...]


def as_array(value: Any, dtype: Any = None) -> np.ndarray:
    """A value as an array, with TensorFlow's defaults for Python values (rule D-TE-4).

    Python floats (and lists of them) become ``float32``, Python ints ``int32``
    (``int64`` when they do not fit), as ``tf.convert_to_tensor`` does.
    """
    if dtype is None and _is_python_number(value):
        if _has(value, float):
            dtype = np.float32
        elif _has(value, int):
            array = np.asarray(value)
            dtype = np.int32 if _fits_int32(array) else np.int64
    array, _ = as_tensor(value, dtype)
    return np.asarray(array)


def _is_python_number(value: Any) -> bool:
    if isinstance(value, (bool, np.generic)):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_is_python_number(v) for v in value)
    return False


def _has(value: Any, kind: type) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_has(v, kind) for v in value)
    return isinstance(value, kind)


def _fits_int32(array: np.ndarray) -> bool:
    info = np.iinfo(np.int32)
    return array.size == 0 or (int(array.min()) >= info.min and int(array.max()) <= info.max)


class DTensor:
    """A tensor sharded over a mesh: ``shape`` is global, ``components`` are per device.

    ``DTensor(components, layout, shape)`` takes ownership of the arrays; use
    :func:`~dtckpt.dtensor.pack` to build one from arrays you keep using.
    """

    def __init__(self, components: Sequence[np.ndarray], layout: Layout, shape: Sequence[int]):
        if layout.type == LayoutType.SINGLE_DEVICE:
            raise UnimplementedError(
                "a DTensor on a single-device layout is not supported: use a mesh layout"
            )
        if MATCH in layout.sharding_specs:
            raise InvalidArgumentError(
                f"a DTensor needs a concrete layout; {layout.sharding_specs} has 'match' "
                "(only a relayout target may)"
            )
        offsets = local_offsets(layout.mesh)
        if len(components) != len(offsets):
            size = layout.mesh.size
            if len(offsets) == size:
                raise InvalidArgumentError(
                    f"a mesh of {size} devices needs {size} components, got {len(components)}"
                )
            raise InvalidArgumentError(
                f"this client holds {len(offsets)} of the {size} devices of the mesh and needs "
                f"one component for each, got {len(components)}"
            )
        if not offsets:
            raise InvalidArgumentError(
                f"this client holds no device of the mesh {layout.mesh.to_string()}"
            )
        self._layout = layout
        self._shape = tuple(int(d) for d in shape)
        self._components = list(components)
        self._offsets = offsets
        local = layout.local_shape_from_global_shape(self._shape)
        dtype = getattr(self._components[0], "dtype", None)
        for device, component in enumerate(self._components):
            if (
                not isinstance(component, np.ndarray)
                or component.shape != local
                or (component.dtype != dtype)
            ):
                raise InvalidArgumentError(
                    f"component {device} of a DTensor of shape {list(self._shape)} with layout "
                    f"{layout.sharding_specs} must be an array of shape {list(local)} and the "
                    f"dtype of component 0, got {type(component).__name__} "
                    f"{getattr(component, 'dtype', '')} {list(getattr(component, 'shape', ()))}"
                )

    @staticmethod
    def _variable_class() -> type:
        """The class ``dtckpt.Variable(dtensor)`` builds: a DVariable."""
        from .variable import DVariable

        return DVariable

    @property
    def layout(self) -> Layout:
        return self._layout

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._components[0].dtype

    @property
    def components(self) -> list[np.ndarray]:
        """The arrays of this client's devices (not copies), in mesh device order."""
        return self._components

    @property
    def local_devices(self) -> tuple[int, ...]:
        """The mesh offsets of :attr:`components`, in order."""
        return self._offsets

    def numpy(self) -> np.ndarray:
        """The whole tensor, assembled from one replica of each block.

        Every block must be held by one of this client's devices: a DTensor
        sharded over several clients is :class:`UnimplementedError` here, as
        dtckpt moves no data between clients outside checkpoints.
        """
        out = np.empty(self._shape, dtype=self.dtype)
        held = _held_blocks(self)
        missing = _block_count(self._layout, self._shape) - len(held)
        if missing:
            raise UnimplementedError(
                f"{missing} block(s) of this DTensor (layout {self._layout.sharding_specs}, shape "
                f"{list(self._shape)}) are on other clients' devices; only blocks held here can "
                "be read (unpack the local components instead)"
            )
        for box, component in held.items():
            out[tuple(slice(s, s + n) for s, n in box)] = component
        return out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        value = self.numpy()
        return value.astype(dtype, copy=False) if dtype is not None else value

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a rank-0 DTensor")
        return self._shape[0]

    def __float__(self) -> float:
        return float(self.numpy())

    def __int__(self) -> int:
        return int(self.numpy())

    def __bool__(self) -> bool:
        return bool(self.numpy())

    def __repr__(self) -> str:
        return (
            f'<DTensor shape={self._shape} dtype={self.dtype} layout="{self._layout.to_string()}">'
        )

    # -- as a checkpoint's sharded value (rule P-SV-1) ----------------------------------
    @property
    def placement(self) -> MeshPlacement:
        """The mesh with its devices divided among the clients (rule D-CF-3)."""
        return placement_of(self._layout.mesh)

    def stored_blocks(self) -> Iterator[Block]:
        """Each distinct block with its lowest holder: a replicated value is one whole block."""
        replicated = _replicated_axes(self._layout, self._shape)
        mesh_shape = self._layout.mesh.shape()
        replicas = math.prod(mesh_shape[a] for a in replicated)
        if self._layout.is_fully_replicated():
            yield Block(None, 0, replicas, replicated)
            return
        # TensorFlow's slice spec: a dimension the layout leaves whole is "-" (M-GE-1).
        whole = [spec in (UNSHARDED, MATCH) for spec in self._layout.sharding_specs]
        for box, holder in unique_shards(self._layout, self._shape):
            extents = tuple(
                (0, FULL_LENGTH) if full else extent
                for full, extent in zip(whole, box, strict=True)
            )
            yield Block(extents, holder, replicas, replicated)

    def replica_device(self, block: Block, index: int) -> int:
        """The device of replica ``index``: its digits, mixed-radix, along the replicated axes."""
        mesh = self._layout.mesh
        shape, strides = mesh.shape(), mesh.strides
        device, rest = block.holder, int(index)
        for axis in reversed(block.group):  # type: ignore[call-overload]
            rest, digit = divmod(rest, shape[axis])
            device += digit * strides[axis]
        return device

    def local_block(self, device: int) -> np.ndarray:
        index = self._index_of().get(int(device))
        if index is None:
            raise InvalidArgumentError(
                f"device {device} of the mesh is not one of this client's {list(self._offsets)}"
            )
        return self._components[index]

    def client_boxes(self, client: int) -> list[tuple[tuple[int, int], ...]]:
        """The distinct blocks the devices of ``client`` hold, in device order."""
        seen: dict[Box, None] = {}
        for device in self.placement.devices_of(client):
            seen.setdefault(device_box(self._layout, self._shape, device))
        return list(seen)

    def copied(self) -> DTensor:
        return DTensor(
            [np.array(c, copy=True) for c in self._components], self._layout, self._shape
        )

    def shallow(self) -> DTensor:
        return DTensor(list(self._components), self._layout, self._shape)

    def _index_of(self) -> dict[int, int]:
        index: dict[int, int] | None = getattr(self, "_index", None)
        if index is None:
            index = {device: i for i, device in enumerate(self._offsets)}
            self._index = index
        return index

    # -- arithmetic (rule D-TE-3) ------------------------------------------------------
    def _binary(self, other: Any, op: Callable[[Any, Any], Any], reflected: bool) -> DTensor:
        mine, theirs, layout, shape = _operands(self, other)
        if reflected:
            mine, theirs = theirs, mine
        count = len(self._offsets)
        left = mine if isinstance(mine, list) else [mine] * count
        right = theirs if isinstance(theirs, list) else [theirs] * count
        parts = [np.asarray(op(x, y)) for x, y in zip(left, right, strict=True)]
        return DTensor(parts, layout, shape)

    def _unary(self, op: Callable[[Any], Any]) -> DTensor:
        return DTensor([np.asarray(op(c)) for c in self._components], self._layout, self._shape)

    def __add__(self, other: Any) -> DTensor:
        return self._binary(other, operator.add, False)

    def __radd__(self, other: Any) -> DTensor:
        return self._binary(other, operator.add, True)

    def __sub__(self, other: Any) -> DTensor:
        return self._binary(other, operator.sub, False)

    def __rsub__(self, other: Any) -> DTensor:
        return self._binary(other, operator.sub, True)

    def __mul__(self, other: Any) -> DTensor:
        return self._binary(other, operator.mul, False)

    def __rmul__(self, other: Any) -> DTensor:
        return self._binary(other, operator.mul, True)

    def __truediv__(self, other: Any) -> DTensor:
        return self._binary(other, operator.truediv, False)

    def __rtruediv__(self, other: Any) -> DTensor:
        return self._binary(other, operator.truediv, True)

    def __floordiv__(self, other: Any) -> DTensor:
        return self._binary(other, operator.floordiv, False)

    def __rfloordiv__(self, other: Any) -> DTensor:
        return self._binary(other, operator.floordiv, True)

    def __mod__(self, other: Any) -> DTensor:
        return self._binary(other, operator.mod, False)

    def __rmod__(self, other: Any) -> DTensor:
        return self._binary(other, operator.mod, True)

    def __pow__(self, other: Any) -> DTensor:
        return self._binary(other, operator.pow, False)

    def __rpow__(self, other: Any) -> DTensor:
        return self._binary(other, operator.pow, True)

    def __neg__(self) -> DTensor:
        return self._unary(operator.neg)

    def __pos__(self) -> DTensor:
        return self._unary(operator.pos)

    def __abs__(self) -> DTensor:
        return self._unary(operator.abs)


def to_dtensor(value: Any) -> DTensor | None:
    """``value`` as a DTensor if it is one or holds one (a DVariable), else ``None``."""
    if isinstance(value, DTensor):
        return value
    read = getattr(value, "_read_dtensor", None)
    return read() if callable(read) else None


def _operands(a: DTensor, other: Any) -> tuple[Any, Any, Layout, tuple[int, ...]]:
    """Both operands of an elementwise operation as per-device lists or scalars (rule D-TE-3).

    Returns ``(a's operand, other's operand, result layout, result shape)``.
    Another DTensor of the same shape is relaid out onto the layout both agree
    on; a rank-0 DTensor, a Python number or a NumPy scalar applies to every
    component; an array of ``a``'s shape is cut into ``a``'s blocks.
    """
    b = to_dtensor(other)
    if b is not None:
        if b.layout.mesh != a.layout.mesh:
            raise InvalidArgumentError(
                "an operation on DTensors needs them on one mesh: "
                f"{a.layout.mesh.to_string()} and {b.layout.mesh.to_string()}"
            )
        if b.shape == ():
            return a.components, b.components[0], a.layout, a.shape
        if a.shape == ():
            return a.components[0], b.components, b.layout, b.shape
        if b.shape != a.shape:
            raise InvalidArgumentError(
                f"an operation on DTensors of shapes {list(a.shape)} and {list(b.shape)}: "
                "dtckpt broadcasts only rank-0 DTensors"
            )
        layout = _common_layout(a.layout, b.layout)
        a = a if a.layout == layout else relayout_dtensor(a, layout)
        b = b if b.layout == layout else relayout_dtensor(b, layout)
        return a.components, b.components, layout, a.shape
    if isinstance(other, (int, float, complex, bool, np.generic)):
        return a.components, other, a.layout, a.shape
    array = np.asarray(other)
    if array.ndim == 0:
        return a.components, array, a.layout, a.shape
    if tuple(array.shape) != a.shape:
        raise InvalidArgumentError(
            f"an operation on a DTensor of shape {list(a.shape)} and an array of shape "
            f"{list(array.shape)}: dtckpt broadcasts only scalars"
        )
    return a.components, blocks_of(array, a.layout), a.layout, a.shape


def _common_layout(a: Layout, b: Layout) -> Layout:
    """Left's sharding where left shards a dimension, else right's if its mesh dimension is free."""
    if a == b:
        return a
    specs = list(a.sharding_specs)
    used = {s for s in specs if s != UNSHARDED}
    for i, spec in enumerate(b.sharding_specs):
        if specs[i] == UNSHARDED and spec != UNSHARDED and spec not in used:
            specs[i] = spec
            used.add(spec)
    return Layout(specs, a.mesh)


# -- placing values on a mesh ----------------------------------------------------------


def blocks_of(value: np.ndarray, layout: Layout) -> list[np.ndarray]:
    """A whole value cut into the blocks of this client's devices: one copy per device."""
    shape = tuple(value.shape)
    layout.local_shape_from_global_shape(shape)  # rank and divisibility checks
    cut: dict[Box, np.ndarray] = {}
    out = []
    for device in local_offsets(layout.mesh):
        box = device_box(layout, shape, device)
        block = cut.get(box)
        if block is None:
            block = cut[box] = value[tuple(slice(s, s + n) for s, n in box)]
        out.append(np.array(block, copy=True))
    return out


def _block_count(layout: Layout, shape: tuple[int, ...]) -> int:
    local = layout.local_shape_from_global_shape(shape)
    return math.prod(layout.num_shards(i) if n else 1 for i, n in enumerate(local))


def _replicated_axes(layout: Layout, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The mesh axes along which a block repeats: unused ones, and those cutting empty dims."""
    names = layout.mesh.dim_names
    local = layout.local_shape_from_global_shape(shape)
    used = {
        names.index(spec)
        for spec, n in zip(layout.sharding_specs, local, strict=True)
        if spec not in (UNSHARDED, MATCH) and n > 0
    }
    return tuple(a for a in range(len(names)) if a not in used)


@functools.lru_cache(maxsize=16)
def _all_offsets(size: int) -> tuple[int, ...]:
    return tuple(range(size))


def _held_blocks(tensor: DTensor) -> dict[Box, np.ndarray]:
    """One local array per distinct block this client holds, keyed by box."""
    layout, shape = tensor.layout, tensor.shape
    components = tensor.components
    if tensor.local_devices == _all_offsets(layout.mesh.size):  # one step per block
        return {box: components[device] for box, device in unique_shards(layout, shape)}
    held: dict[Box, np.ndarray] = {}
    for device, component in zip(tensor.local_devices, components, strict=True):
        held.setdefault(device_box(layout, shape, device), component)
    return held


def relayout_dtensor(tensor: DTensor, layout: Layout) -> DTensor:
    """The same values under another layout of the same or another mesh (rule D-TE-2).

    Each distinct target block of this client's devices is assembled once from
    the source blocks it overlaps, found by arithmetic on the block grid (rule
    M-GE-2), and pasted with the ``copy_box`` kernel; replicas of it get their
    own copies. The whole tensor is never built unless a target block is the
    whole tensor. A ``match`` spec in ``layout`` keeps the source's sharding of
    that dimension. A source block held only by another client's devices is
    :class:`UnimplementedError` (rule D-TE-5).
    """
    shape = tensor.shape
    layout = _resolve_match(tensor.layout, layout)
    layout.local_shape_from_global_shape(shape)
    source = tensor.layout
    itemsize = tensor.dtype.itemsize
    held = _held_blocks(tensor)
    targets = local_offsets(layout.mesh)
    boxes = [device_box(layout, shape, device) for device in targets]
    built: dict[Box, np.ndarray] = {}
    for box in boxes:
        if box in built:
            continue
        local = np.empty(tuple(n for _, n in box), dtype=tensor.dtype)
        for source_box, _device in overlapping_blocks(source, shape, box):
            overlap = intersect(source_box, box)
            if overlap is None:
                continue
            component = held.get(source_box)
            if component is None:
                raise UnimplementedError(
                    f"relayout to {layout.sharding_specs} needs the block {list(source_box)} of "
                    "the source, which only other clients' devices hold: dtckpt moves no data "
                    "between clients outside checkpoints"
                )
            _paste(component, source_box, local, box, overlap, itemsize)
        built[box] = local
    out: list[np.ndarray] = []
    handed_out: set[Box] = set()
    for box in boxes:
        out.append(built[box].copy() if box in handed_out else built[box])
        handed_out.add(box)
    return DTensor(out, layout, shape)


def _resolve_match(source: Layout, target: Layout) -> Layout:
    if MATCH not in target.sharding_specs:
        return target
    if source.rank != target.rank or source.mesh != target.mesh:
        raise InvalidArgumentError(
            "a relayout target with 'match' needs the source's rank and mesh: "
            f"{source.to_string()} to {target.to_string()}"
        )
    specs = [
        s if t == MATCH else t
        for s, t in zip(source.sharding_specs, target.sharding_specs, strict=True)
    ]
    layout = Layout(specs, target.mesh)
    return layout.to_parted() if target.type == LayoutType.PARTED else layout


def _paste(
    src: np.ndarray, source_box: Box, dst: np.ndarray, box: Box, overlap: Box, itemsize: int
) -> None:
    src_origin = tuple(o - s for (o, _), (s, _) in zip(overlap, source_box, strict=True))
    dst_origin = tuple(o - b for (o, _), (b, _) in zip(overlap, box, strict=True))
    extent = tuple(n for _, n in overlap)
    if src.dtype == object or dst.ndim == 0:
        dst[tuple(slice(d, d + e) for d, e in zip(dst_origin, extent, strict=True))] = src[
            tuple(slice(s, s + e) for s, e in zip(src_origin, extent, strict=True))
        ]
        return
    source = np.ascontiguousarray(src)
    kernels.sized(source.nbytes).copy_box(
        source.reshape(-1).view(np.uint8),
        _bytes(source.shape, itemsize),
        _bytes(src_origin, itemsize),
        dst.reshape(-1).view(np.uint8),
        _bytes(dst.shape, itemsize),
        _bytes(dst_origin, itemsize),
        _bytes(extent, itemsize),
    )


def _bytes(shape: Sequence[int], itemsize: int) -> tuple[int, ...]:
    shape = tuple(shape)
    return shape[:-1] + (shape[-1] * itemsize,) if shape else ()

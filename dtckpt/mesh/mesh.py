"""``Mesh``: a named grid of devices (rules M-ME-1 to M-ME-4).

The authority is TensorFlow's ``tensorflow/dtensor/python/layout.py``.

A mesh of shape ``[2, 4]`` with dimensions ``x`` and ``y`` numbers its devices in
row-major order, so the device at offset ``i`` sits at coordinates ``(i // 4, i % 4)``::

          y=0 y=1 y=2 y=3
    x=0 [  0   1   2   3 ]
    x=1 [  4   5   6   7 ]

Its string form, exactly as TensorFlow writes it::

    name|x=2,y=4|0,1,...,7|0,1,...,7|/job:localhost/replica:0/task:0/device:CPU:0,...
    ^     ^        ^         ^         ^ local devices (then "|global devices" if any)
    |     |        |         '-- local device ids
    |     |        '-- global device ids (row-major)
    |     '-- dimension names and sizes
    '-- mesh name (may be empty)

A *single-device* mesh (``Mesh.from_device``) has no dimensions; its string is
the device name alone.
"""

from __future__ import annotations

import math
import re
from collections import Counter, namedtuple
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from .device import DeviceSpec
from .proto import MeshDimensionProto, MeshProto

__all__ = ["Mesh", "MeshDimension", "create_mesh", "parse_devices", "HOST_DEVICE_TYPE"]

#: Rule H-BD-6: numbers in a mesh string are ASCII decimal integers that fit in int64 (at most
#: 19 digits, so no huge or non-ASCII number reaches ``int``), and a mesh has at most
#: ``MAX_MESH_RANK`` dimensions, each of size >= 1; the ids listed bound the device count.
_ID_TEXT = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]{1,19}[ \t\n\v\f\r]*", re.ASCII)
_SIZE_TEXT = re.compile(r"[0-9]{1,19}", re.ASCII)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_MESH_RANK = 32
HOST_DEVICE_TYPE = "CPU"
_XLA_SUFFIX = "use_xla_spmd"

MeshDimension = namedtuple("MeshDimension", ["name", "size"])


class Mesh:
    """``Mesh(dim_names, global_device_ids, local_device_ids, local_devices, mesh_name="",
    global_devices=None, use_xla_spmd=False)``, TensorFlow's ``dtensor.Mesh``.

    Devices are names (``str``) or :class:`DeviceSpec` records. The constructor
    checks what TensorFlow's Python constructor checks (rule M-ME-2);
    :meth:`from_string` and :meth:`from_proto` check what its C++ parser checks.
    """

    def __init__(
        self,
        dim_names: Sequence[str],
        global_device_ids: Any,
        local_device_ids: Sequence[int],
        local_devices: Sequence[str | DeviceSpec],
        mesh_name: str = "",
        global_devices: Sequence[str | DeviceSpec] | None = None,
        use_xla_spmd: bool = False,
    ) -> None:
        self._build(
            dim_names,
            global_device_ids,
            local_device_ids,
            local_devices,
            mesh_name,
            global_devices or [],
            use_xla_spmd,
            strict=True,
        )

    def _build(
        self,
        dim_names: Sequence[str],
        global_device_ids: Any,
        local_device_ids: Sequence[int],
        local_devices: Sequence[str | DeviceSpec],
        mesh_name: str,
        global_devices: Sequence[str | DeviceSpec],
        use_xla_spmd: bool,
        *,
        strict: bool,
    ) -> None:
        ids = np.asarray(global_device_ids)
        if ids.size == 0:
            raise InvalidArgumentError("Variable global_device_ids must be non-empty.")
        if ids.dtype.kind not in "iu":
            raise InvalidArgumentError("global_device_ids must be integers")
        flat = ids.reshape(-1)
        first = int(flat[0])
        last = first + flat.size - 1  # in Python ints: int64 arithmetic could wrap around
        if last > _INT64_MAX or not np.array_equal(flat, np.arange(first, last + 1)):
            raise InvalidArgumentError(f"global_device_ids must sequentially increase: {ids}")
        names = [str(d) for d in dim_names]
        if len(names) != ids.ndim:
            raise InvalidArgumentError(
                "Number of mesh dimensions does not match number of dimension names."
            )
        local_text = [_device_text(d) for d in local_devices]
        global_text = [_device_text(d) for d in global_devices]
        if not local_text and not global_text:
            raise InvalidArgumentError("Empty list of devices not allowed.")
        local_specs = [DeviceSpec.from_string(d) for d in local_text]
        if strict:
            _check_duplicates(local_text, local_specs)
        local_ids = [int(i) for i in local_device_ids]
        if len(local_ids) != len(local_text):
            raise InvalidArgumentError(
                "Variable local_device_ids does not have same size as local_devices."
            )
        if len(local_ids) > flat.size:
            raise InvalidArgumentError("Cannot have more local than global device IDs.")
        specs = local_specs or [DeviceSpec.from_string(d) for d in global_text]
        kinds = {s.device_type for s in specs}
        if None in kinds:
            raise InvalidArgumentError("device_type is required")
        if len(kinds) > 1:
            shown = ", ".join(repr(k) for k in sorted(str(k) for k in kinds))
            raise InvalidArgumentError(f"Devices containing multiple device_types : {{{shown}}}")
        kind = str(kinds.pop())
        if strict and use_xla_spmd and kind != "TPU":
            raise InvalidArgumentError(f"XLA SPMD is not currently not supported for {kind} mesh.")
        # dtckpt's own checks (rule M-ME-2): what TensorFlow accepts here but cannot
        # round-trip through its string form, or that names no device of the mesh.
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"mesh dimension names must be unique: {names}")
        for name in names:
            if not name or any(c in name for c in ",|=:") or name in ("unsharded", "match"):
                raise InvalidArgumentError(f"invalid mesh dimension name {name!r}")
        for text in local_text + global_text:
            if not text or any(c in text for c in ",|"):
                raise InvalidArgumentError(f"invalid device name {text!r} in a mesh")
        if any(c in mesh_name for c in "|,"):
            raise InvalidArgumentError(f"invalid mesh name {mesh_name!r}")
        outside = [i for i in local_ids if not first <= i <= last]
        if outside:
            raise InvalidArgumentError(f"local device id {outside[0]} is not in the mesh")
        self._dim_names = names
        self._ids = ids.astype(np.int64).reshape(ids.shape)
        self._local_ids = local_ids
        self._local_devices = local_text
        self._global_devices = global_text
        self._name = str(mesh_name)
        self._xla = bool(use_xla_spmd)
        self._single = ""
        self._device_type = kind
        self._text: str | None = None

    # -- other constructors ----------------------------------------------------------
    @classmethod
    def _create(cls, *args: Any) -> Mesh:
        """A mesh checked as TensorFlow's C++ parser checks it (no Python-only checks)."""
        mesh = cls.__new__(cls)
        mesh._build(*args, strict=False)
        return mesh

    @classmethod
    def from_device(cls, device: str | DeviceSpec) -> Mesh:
        """A single-device mesh: no dimensions, one device (``Mesh.from_device``)."""
        text = _device_text(device)
        spec = DeviceSpec.from_string(text)
        if spec.device_type is None or not text or any(c in text for c in ",|"):
            raise InvalidArgumentError(f"not a device name: {text!r}")
        mesh = cls.__new__(cls)
        mesh._dim_names = []
        mesh._ids = np.zeros((0,), dtype=np.int64)
        mesh._local_ids = []
        mesh._local_devices = []
        mesh._global_devices = []
        mesh._name = ""
        mesh._xla = False
        mesh._single = text
        mesh._device_type = spec.device_type
        mesh._text = None
        return mesh

    @classmethod
    def from_string(cls, mesh_str: str) -> Mesh:
        """Parse TF's mesh string; anything malformed is an :class:`InvalidArgumentError`,
        also a ``ValueError`` as TF raises (rule H-ER-1)."""
        text = str(mesh_str)
        parts = text.split("|")
        if len(parts) == 1 and text:
            return cls.from_device(text)
        use_xla = parts[-1] == _XLA_SUFFIX
        if use_xla:
            parts = parts[:-1]
        if len(parts) not in (5, 6):
            raise InvalidArgumentError(f"mesh string needs 5 or 6 '|'-separated fields: {text!r}")
        name, dims, global_ids, local_ids, local_devices = parts[:5]
        names, sizes = [], []
        for item in dims.split(",") if dims else []:
            key, sep, value = item.partition("=")
            if not sep or not _SIZE_TEXT.fullmatch(value) or int(value) < 1:
                raise InvalidArgumentError(f"bad mesh dimension {item!r} in {text!r}")
            names.append(key)
            sizes.append(int(value))
        if len(sizes) > MAX_MESH_RANK:
            raise InvalidArgumentError(
                f"mesh string has {len(sizes)} dimensions, more than {MAX_MESH_RANK}: {text!r}"
            )
        ids = _parse_ids(global_ids, text)
        local = _parse_ids(local_ids, text)
        if math.prod(sizes) != len(ids):
            raise InvalidArgumentError(
                f"mesh dimensions {dict(zip(names, sizes, strict=True))} hold {math.prod(sizes)} "
                f"devices but {len(ids)} ids are listed"
            )
        return cls._create(
            names,
            np.array(ids, dtype=np.int64).reshape(sizes),
            local,
            local_devices.split(",") if local_devices else [],
            name,
            parts[5].split(",") if len(parts) == 6 and parts[5] else [],
            use_xla,
        )

    @classmethod
    def from_proto(cls, proto: MeshProto | bytes) -> Mesh:
        """A mesh from a :class:`MeshProto` (or its serialized bytes)."""
        if not isinstance(proto, MeshProto):
            proto = MeshProto.FromString(bytes(proto))
        if proto.single_device:
            return cls.from_device(proto.single_device)
        sizes = [d.size for d in proto.mesh_dimensions]
        if any(s < 1 for s in sizes) or len(sizes) > MAX_MESH_RANK:
            raise InvalidArgumentError(f"bad mesh dimensions in a MeshProto: {sizes}")
        if math.prod(sizes) != len(proto.global_device_ids):
            raise InvalidArgumentError(
                f"mesh dimensions {sizes} hold {math.prod(sizes)} devices but the MeshProto "
                f"lists {len(proto.global_device_ids)} ids"
            )
        return cls._create(
            [d.name for d in proto.mesh_dimensions],
            np.array(proto.global_device_ids, dtype=np.int64).reshape(sizes),
            list(proto.local_device_ids),
            list(proto.local_devices),
            proto.name,
            list(proto.global_devices),
            proto.use_xla_spmd,
        )

    # -- shape -------------------------------------------------------------------
    @property
    def dim_names(self) -> list[str]:
        return list(self._dim_names)

    @property
    def name(self) -> str:
        return self._name

    @property
    def size(self) -> int:
        return int(self._ids.size)

    @property
    def single_device(self) -> str:
        """The device of a single-device mesh, ``""`` otherwise."""
        return self._single

    def is_single_device(self) -> bool:
        return bool(self._single)

    def use_xla_spmd(self) -> bool:
        return self._xla

    def shape(self) -> list[int]:
        if self._single:
            return []
        return list(map(int, self._ids.shape))

    @property
    def strides(self) -> list[int]:
        """Row-major strides of device offsets along each dimension (``[1]`` for no dimension)."""
        shape = self.shape()
        if not shape:
            return [1]
        return [math.prod(shape[k + 1 :]) for k in range(len(shape))]

    def contains_dim(self, dim_name: str) -> bool:
        return dim_name in self._dim_names

    def __contains__(self, dim_name: object) -> bool:
        """``"x" in mesh``: whether the mesh has a dimension of that name (as TensorFlow)."""
        if not isinstance(dim_name, str):
            raise TypeError(f"mesh membership tests a dimension name (str), got {dim_name!r}")
        return dim_name in self._dim_names

    def dim_size(self, dim_name: str) -> int:
        if dim_name not in self._dim_names:
            raise InvalidArgumentError(
                f"Dimension {dim_name} does not exist in mesh."
                f"Available dimensions: {','.join(self._dim_names)}"
            )
        return int(self._ids.shape[self._dim_names.index(dim_name)])

    def __getitem__(self, dim_name: str) -> MeshDimension:
        return MeshDimension(name=dim_name, size=self.dim_size(dim_name))

    # -- devices -----------------------------------------------------------------
    def global_device_ids(self) -> np.ndarray:
        ids: np.ndarray = self._ids.copy()
        return ids

    def local_device_ids(self) -> list[int]:
        return list(self._local_ids)

    def local_devices(self) -> list[str]:
        return list(self._local_devices)

    def global_devices(self) -> list[str]:
        return list(self._global_devices)

    def num_local_devices(self) -> int:
        return len(self._local_ids)

    def min_global_device_id(self) -> int:
        if self._single:
            raise InvalidArgumentError("a single-device mesh has no global device ids")
        return int(self._ids.reshape(-1)[0])

    def device_type(self) -> str:
        return self._device_type

    def is_remote(self) -> bool:
        """Whether none of the mesh's devices is local to this client."""
        return not self._local_ids and self.size > 0

    def device_location(self, offset: int) -> list[int]:
        """Coordinates, along each dimension, of the device at ``offset`` in row-major order."""
        offset = int(offset)
        if not 0 <= offset < self.size:
            raise InvalidArgumentError(
                "Mesh offset cannot be negative or exceed Mesh's size. "
                f"Offset size:{offset} and Mesh size:{self.size}"
            )
        return [(offset // s) % n for s, n in zip(self.strides, self.shape(), strict=True)]

    def coords(self, device_idx: int) -> np.ndarray:
        """``(device_idx // strides) % shape``: mesh coordinates, wrapping past the last device."""
        out: np.ndarray = (int(device_idx) // np.array(self.strides, dtype=np.int64)) % np.array(
            self.shape() or [1], dtype=np.int64
        )
        return out

    def unravel_index(self) -> dict[int, dict[str, int]]:
        """``{offset: {dim_name: index}}`` for every device, in row-major order."""
        if self._single:
            return {0: {}}
        grid = np.indices(self._ids.shape).reshape(len(self._dim_names), -1).T.tolist()
        return {
            offset: dict(zip(self._dim_names, loc, strict=True)) for offset, loc in enumerate(grid)
        }

    def local_device_locations(self) -> list[dict[str, int]]:
        """The location (``{dim_name: index}``) of each local device."""
        first = 0 if self._single else self.min_global_device_id()
        return [
            dict(zip(self._dim_names, self.device_location(i - first), strict=True))
            for i in self._local_ids
        ]

    def host_mesh(self) -> Mesh:
        """This client's devices of the grid as host CPUs, no name, no XLA SPMD (rule M-ME-3)."""
        if self._single:
            raise InvalidArgumentError(
                f"a single-device mesh ({self._single}) has no host mesh in dtckpt"
            )
        if not self._local_devices:
            raise InvalidArgumentError(
                f"a mesh with no local devices has no host mesh on this client: {self.to_string()}"
            )
        if self.size % len(self._local_devices):
            raise InvalidArgumentError(
                f"Uneven local clusters with global_ids {self.size} and local_devices ids "
                f"{len(self._local_devices)}"
            )
        return Mesh._create(
            self._dim_names,
            self._ids,
            self._local_ids,
            [_on_host(d) for d in self._local_devices],
            "",
            [],
            False,
        )

    # -- strings and protos ----------------------------------------------------------
    def to_string(self) -> str:
        # A mesh never changes once built, and its string (which equality and hashing
        # use) grows with the device count: build it once.
        if self._text is None:
            self._text = self._format()
        return self._text

    def _format(self) -> str:
        if self._single:
            return self._single
        dims = ",".join(f"{n}={s}" for n, s in zip(self._dim_names, self.shape(), strict=True))
        parts = [
            self._name,
            dims,
            ",".join(map(str, self._ids.reshape(-1).tolist())),
            ",".join(map(str, self._local_ids)),
            ",".join(self._local_devices),
        ]
        if self._global_devices:
            parts.append(",".join(self._global_devices))
        text = "|".join(parts)
        return text + "|" + _XLA_SUFFIX if self._xla else text

    def as_proto(self) -> MeshProto:
        if self._single:
            return MeshProto(single_device=self._single)
        return MeshProto(
            mesh_dimensions=tuple(
                MeshDimensionProto(n, s) for n, s in zip(self._dim_names, self.shape(), strict=True)
            ),
            global_device_ids=tuple(self._ids.reshape(-1).tolist()),
            name=self._name,
            local_device_ids=tuple(self._local_ids),
            local_devices=tuple(self._local_devices),
            global_devices=tuple(self._global_devices),
            use_xla_spmd=self._xla,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mesh) and other.to_string() == self.to_string()

    def __hash__(self) -> int:
        return hash(self.to_string())

    def __repr__(self) -> str:
        return f"Mesh.from_string({self.to_string()})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Mesh.from_string, (self.to_string(),))


def _device_text(device: str | DeviceSpec) -> str:
    return device.to_string() if isinstance(device, DeviceSpec) else str(device)


def _on_host(device: str) -> str:
    spec = DeviceSpec.from_string(device)
    return spec.make_merged_spec(DeviceSpec(device_type=HOST_DEVICE_TYPE)).to_string()


def _check_duplicates(texts: list[str], specs: list[DeviceSpec]) -> None:
    """Rule M-ME-2: no device twice, except a mesh laid on one host CPU (as TensorFlow)."""
    distinct = set(specs)
    if len(distinct) == len(specs):
        return
    if len(distinct) == 1 and specs[0].device_type == HOST_DEVICE_TYPE:
        return
    counts = Counter(specs)
    repeated = [t for t, s in zip(texts, specs, strict=True) if counts[s] > 1]
    raise InvalidArgumentError(f"Duplicate devices found in mesh specification {repeated}.")


def _parse_ids(text: str, whole: str) -> list[int]:
    """A comma-separated list of device ids (rule H-BD-6)."""
    ids = []
    for item in text.split(",") if text else []:
        if not _ID_TEXT.fullmatch(item) or not _INT64_MIN <= int(item) <= _INT64_MAX:
            raise InvalidArgumentError(f"bad device id {item!r} in mesh string {whole!r}")
        ids.append(int(item))
    return ids


def parse_devices(
    devices: Sequence[str | DeviceSpec], device_type: str | None
) -> tuple[list[DeviceSpec], str]:
    """Devices given to build a mesh, and their type, which ``device_type`` (if given) must be.

    TensorFlow's ``mesh_util._make_device_specs`` for a list of devices: the
    first device says the type.
    """
    specs = [d if isinstance(d, DeviceSpec) else DeviceSpec.from_string(str(d)) for d in devices]
    if not specs:
        raise InvalidArgumentError("a mesh needs at least one device")
    first = (specs[0].device_type or "").upper()
    if device_type is not None and device_type.upper() != first:
        raise InvalidArgumentError(
            f"Conflicting devices {[s.to_string() for s in specs]} and device_type {device_type}"
        )
    return specs, device_type or first


def create_mesh(
    mesh_dims: Sequence[tuple[str, int]] | dict[str, int] | None = None,
    mesh_name: str = "",
    devices: Sequence[str | DeviceSpec] | None = None,
    device_type: str | None = None,
    use_xla_spmd: bool = False,
    *,
    available: int = 1,
    job: str = "localhost",
) -> Mesh:
    """A single-client mesh (rule M-ME-4; TensorFlow's ``mesh_util.create_mesh``).

    Without ``mesh_dims`` the mesh is one dimension ``x`` over every device; a
    single dimension of size ``-1`` also takes every device. The devices are
    ``devices``, else ``available`` simulated devices of ``device_type``
    (default CPU) when the dimensions do not say how many, else as many
    simulated devices as the dimensions need: a simulated host has whatever
    devices a mesh asks for. Device names are completed with
    ``/job:<job>/replica:0/task:0``.
    """
    specs: list[DeviceSpec] | None = None
    if devices is not None:
        specs, device_type = parse_devices(devices, device_type)
    kind = (device_type or "CPU").upper()
    items = list(mesh_dims.items()) if isinstance(mesh_dims, dict) else list(mesh_dims or [])
    count = len(specs) if specs is not None else int(available)
    if mesh_dims is None:
        items = [("x", count)]
    elif len(items) == 1 and int(items[0][1]) == -1:
        items = [(items[0][0], count)]
    names = [str(n) for n, _ in items]
    sizes = [int(s) for _, s in items]
    if any(s <= 0 for s in sizes):
        raise InvalidArgumentError(f"mesh dimension sizes must be positive: {items}")
    if specs is None:
        specs = [DeviceSpec(device_type=kind, device_index=i) for i in range(math.prod(sizes))]
    if math.prod(sizes) != len(specs):
        raise InvalidArgumentError(
            f"length of devices ({len(specs)}) must be equal to total size of the mesh of "
            f"shape {sizes}"
        )
    local = DeviceSpec(job=job, replica=0, task=0)
    full = [local.make_merged_spec(s).to_string() for s in specs]
    return Mesh(
        names,
        np.arange(len(full), dtype=np.int64).reshape(sizes),
        list(range(len(full))),
        full,
        mesh_name=mesh_name,
        use_xla_spmd=use_xla_spmd,
    )

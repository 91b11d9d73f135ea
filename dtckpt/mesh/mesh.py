"""``Mesh``: a named grid of devices (rule M-ME-1; ``tensorflow/dtensor/python/layout.py``).

A mesh of shape ``[2, 4]`` with dimensions ``x`` and ``y`` numbers its devices in
row-major order, so device ``i`` sits at coordinates ``(i // 4, i % 4)``::

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
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["Mesh", "create_mesh", "device_string"]

#: Rule H-BD-6: numbers in a mesh string are ASCII decimal integers that fit in int64 (at most
#: 19 digits, so no huge or non-ASCII number reaches ``int``), and a mesh has at most
#: ``MAX_MESH_RANK`` dimensions, each of size >= 1; the ids listed bound the device count.
_ID_TEXT = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]{1,19}[ \t\n\v\f\r]*", re.ASCII)
_SIZE_TEXT = re.compile(r"[0-9]{1,19}", re.ASCII)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_MESH_RANK = 32

_DEVICE = re.compile(
    r"^(?:/job:(?P<job>[^/]+))?(?:/replica:(?P<replica>\d+))?(?:/task:(?P<task>\d+))?"
    r"/?(?:device:)?(?P<type>[A-Za-z_]+):(?P<index>\d+)$"
)


def device_string(device: str, default_type: str = "CPU") -> str:
    """Canonical device name: ``CPU:3`` becomes ``/job:localhost/replica:0/task:0/device:CPU:3``."""
    match = _DEVICE.match(str(device).strip())
    if match is None:
        raise InvalidArgumentError(f"cannot parse device name {device!r}")
    job = match.group("job") or "localhost"
    replica = match.group("replica") or "0"
    task = match.group("task") or "0"
    kind = (match.group("type") or default_type).upper()
    return f"/job:{job}/replica:{replica}/task:{task}/device:{kind}:{match.group('index')}"


class Mesh:
    """``Mesh(dim_names, global_device_ids, local_device_ids, local_devices, mesh_name="")``."""

    def __init__(
        self,
        dim_names: Sequence[str],
        global_device_ids: Any,
        local_device_ids: Sequence[int],
        local_devices: Sequence[str],
        mesh_name: str = "",
        global_devices: Sequence[str] | None = None,
        use_xla_spmd: bool = False,
    ) -> None:
        ids = np.asarray(global_device_ids)
        if ids.dtype.kind not in "iu":
            raise InvalidArgumentError("global_device_ids must be integers")
        dim_names = [str(d) for d in dim_names]
        if ids.ndim != len(dim_names):
            raise InvalidArgumentError(
                f"global_device_ids has rank {ids.ndim} but there are {len(dim_names)} "
                f"dimension names {dim_names}"
            )
        if len(set(dim_names)) != len(dim_names):
            raise InvalidArgumentError(f"mesh dimension names must be unique: {dim_names}")
        for name in dim_names:
            if not name or any(c in name for c in ",|=:") or name in ("unsharded", "match"):
                raise InvalidArgumentError(f"invalid mesh dimension name {name!r}")
        flat = ids.reshape(-1)
        if flat.size == 0:
            raise InvalidArgumentError("a mesh needs at least one device")
        first = int(flat[0])
        last = first + flat.size - 1  # in Python ints: int64 arithmetic could wrap around
        if last > _INT64_MAX or not np.array_equal(flat, np.arange(first, last + 1)):
            raise InvalidArgumentError(
                "global_device_ids must be consecutive integers in row-major order, got "
                f"{flat.tolist()}"
            )
        local_ids = [int(i) for i in local_device_ids]
        if len(local_ids) != len(local_devices):
            raise InvalidArgumentError(
                f"{len(local_ids)} local device ids but {len(local_devices)} local devices"
            )
        known = set(flat.tolist())
        for device_id in local_ids:
            if device_id not in known:
                raise InvalidArgumentError(f"local device id {device_id} is not in the mesh")
        if any(c in mesh_name for c in "|,"):
            raise InvalidArgumentError(f"invalid mesh name {mesh_name!r}")
        self._dim_names = dim_names
        self._ids = ids.astype(np.int64)
        self._local_ids = local_ids
        self._local_devices = [str(d) for d in local_devices]
        self._global_devices = [str(d) for d in global_devices] if global_devices else []
        self._name = mesh_name
        self._use_xla_spmd = bool(use_xla_spmd)

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

    def shape(self) -> list[int]:
        return [int(d) for d in self._ids.shape]

    @property
    def strides(self) -> list[int]:
        """Row-major strides of device ids along each dimension."""
        shape = self.shape()
        return [math.prod(shape[k + 1 :]) for k in range(len(shape))]

    def contains_dim(self, dim_name: str) -> bool:
        return dim_name in self._dim_names

    def dim_size(self, dim_name: str) -> int:
        if dim_name not in self._dim_names:
            raise InvalidArgumentError(f"mesh has no dimension {dim_name!r}: {self._dim_names}")
        return self.shape()[self._dim_names.index(dim_name)]

    def global_device_ids(self) -> np.ndarray:
        ids: np.ndarray = self._ids.copy()
        return ids

    def local_device_ids(self) -> list[int]:
        return list(self._local_ids)

    def local_devices(self) -> list[str]:
        return list(self._local_devices)

    def num_local_devices(self) -> int:
        return len(self._local_ids)

    def min_global_device_id(self) -> int:
        return int(self._ids.reshape(-1)[0])

    def device_type(self) -> str:
        devices = self._local_devices or self._global_devices
        return devices[0].rsplit(":", 2)[-2].rsplit("/device:", 1)[-1].upper() if devices else ""

    def device_location(self, device_id: int) -> list[int]:
        """Coordinates of a device id along each mesh dimension (row-major)."""
        offset = int(device_id) - self.min_global_device_id()
        if not 0 <= offset < self.size:
            raise InvalidArgumentError(f"device id {device_id} is not in the mesh")
        return [int(c) for c in np.unravel_index(offset, self.shape())]

    def unravel_index(self) -> dict[int, list[int]]:
        return {int(i): self.device_location(int(i)) for i in self._ids.reshape(-1)}

    # -- strings -------------------------------------------------------------------
    def to_string(self) -> str:
        dims = ",".join(f"{n}={s}" for n, s in zip(self._dim_names, self.shape(), strict=True))
        parts = [
            self._name,
            dims,
            ",".join(str(i) for i in self._ids.reshape(-1).tolist()),
            ",".join(str(i) for i in self._local_ids),
            ",".join(self._local_devices),
        ]
        if self._global_devices:
            parts.append(",".join(self._global_devices))
        text = "|".join(parts)
        return text + "|use_xla_spmd" if self._use_xla_spmd else text

    @classmethod
    def from_string(cls, text: str) -> Mesh:
        """Parse TF's mesh string; anything malformed is an :class:`InvalidArgumentError`,
        also a ``ValueError`` as TF raises (rule H-ER-1)."""
        parts = text.split("|")
        use_xla = bool(parts) and parts[-1] == "use_xla_spmd"
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
        return cls(
            names,
            np.array(ids, dtype=np.int64).reshape(sizes),
            local,
            local_devices.split(",") if local_devices else [],
            mesh_name=name,
            global_devices=parts[5].split(",") if len(parts) == 6 and parts[5] else None,
            use_xla_spmd=use_xla,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mesh) and other.to_string() == self.to_string()

    def __hash__(self) -> int:
        return hash(self.to_string())

    def __repr__(self) -> str:
        dims = ", ".join(f"{n}={s}" for n, s in zip(self._dim_names, self.shape(), strict=True))
        return f"Mesh({self._name!r}, {dims})"


def _parse_ids(text: str, whole: str) -> list[int]:
    """A comma-separated list of device ids (rule H-BD-6)."""
    ids = []
    for item in text.split(",") if text else []:
        if not _ID_TEXT.fullmatch(item) or not _INT64_MIN <= int(item) <= _INT64_MAX:
            raise InvalidArgumentError(f"bad device id {item!r} in mesh string {whole!r}")
        ids.append(int(item))
    return ids


def create_mesh(
    mesh_dims: Sequence[tuple[str, int]] | dict[str, int] | None = None,
    mesh_name: str = "",
    devices: Sequence[str] | None = None,
    device_type: str | None = None,
    use_xla_spmd: bool = False,
) -> Mesh:
    """A single-host mesh over ``devices`` (default: ``device_type`` devices 0..n-1)."""
    kind = (device_type or "CPU").upper()
    if mesh_dims is None:
        count = len(devices) if devices else 1
        mesh_dims = [("batch", count)]
    items = list(mesh_dims.items()) if isinstance(mesh_dims, dict) else list(mesh_dims)
    names = [str(n) for n, _ in items]
    sizes = [int(s) for _, s in items]
    if any(s <= 0 for s in sizes):
        raise InvalidArgumentError(f"mesh dimension sizes must be positive: {items}")
    count = math.prod(sizes)
    if devices is None:
        devices = [f"{kind}:{i}" for i in range(count)]
    if len(devices) != count:
        raise InvalidArgumentError(
            f"mesh of shape {sizes} needs {count} devices, got {len(devices)}"
        )
    local = [device_string(d, kind) for d in devices]
    return Mesh(
        names,
        np.arange(count, dtype=np.int64).reshape(sizes),
        list(range(count)),
        local,
        mesh_name=mesh_name,
        use_xla_spmd=use_xla_spmd,
    )

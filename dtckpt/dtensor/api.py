"""The ``tf.experimental.dtensor`` functions on DTensors (rules D-AP-1, D-AP-2).

Names, arguments and error messages are TensorFlow's
(``tensorflow/dtensor/python/api.py``). Where TensorFlow runs an op on its
DTensor device, dtckpt moves NumPy blocks: ``relayout`` pastes blocks,
``copy_to_mesh`` cuts a value into blocks, ``pack``/``unpack`` hand the blocks
over. The DTensor "device" is a name only (:func:`device_name`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, UnimplementedError
from ..mesh import Layout, Mesh
from . import config
from .tensor import DTensor, as_array, blocks_of, relayout_dtensor, to_dtensor

__all__ = [
    "call_with_layout",
    "check_layout",
    "copy_to_mesh",
    "default_mesh",
    "device_name",
    "dtensor_of",
    "fetch_layout",
    "get_default_mesh",
    "is_dtensor",
    "pack",
    "relayout",
    "relayout_like",
    "run_on",
    "unpack",
]

_DEFAULT_MESH: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar(
    "dtckpt_default_mesh", default=None
)


def device_name() -> str:
    """The name TensorFlow gives its DTensor device, on this client."""
    return f"/job:{config.job_name()}/replica:0/task:{config.client_id()}/device:CUSTOM:0"


def _host_device() -> str:
    return f"/job:{config.job_name()}/replica:0/task:{config.client_id()}/device:CPU:0"


@contextlib.contextmanager
def default_mesh(mesh: Mesh) -> Iterator[None]:
    """A scope (or decorator) in which :func:`get_default_mesh` is ``mesh``; scopes nest.

    In TensorFlow the default mesh places the outputs of ops that take no
    DTensor; dtckpt has no such ops, so the scope is what
    :func:`get_default_mesh` reports (and :func:`call_with_layout` opens one).
    """
    if not isinstance(mesh, Mesh):
        raise InvalidArgumentError(f"Expect `mesh` to be `Mesh`, got {type(mesh)}")
    token = _DEFAULT_MESH.set(mesh)
    try:
        yield
    finally:
        _DEFAULT_MESH.reset(token)


def run_on(mesh: Mesh) -> contextlib.AbstractContextManager[None]:
    """:func:`default_mesh` under its older name (deprecated by TensorFlow)."""
    return default_mesh(mesh)


def get_default_mesh() -> Mesh | None:
    """The mesh of the innermost :func:`default_mesh` scope, ``None`` outside any."""
    return _DEFAULT_MESH.get()


def is_dtensor(tensor: Any) -> bool:
    """Whether ``tensor`` is a DTensor (a DVariable counts, as in TensorFlow)."""
    return to_dtensor(tensor) is not None


def dtensor_of(tensor: Any) -> DTensor:
    """``tensor`` as a DTensor (a DVariable's value); anything else is TensorFlow's error."""
    value = to_dtensor(tensor)
    if value is None:
        raise InvalidArgumentError("FetchLayout expects a tensor placed on the layout device.")
    return value


def fetch_layout(tensor: Any) -> Layout:
    """The layout of a DTensor or of a DVariable's value."""
    return dtensor_of(tensor).layout


def check_layout(tensor: Any, layout: Layout) -> None:
    """Raise :class:`InvalidArgumentError` (a ``ValueError``) unless ``tensor`` has ``layout``."""
    actual = fetch_layout(tensor)
    if actual != layout:
        raise InvalidArgumentError(
            f"Layout of tensor: {actual}, did not match expected layout: {layout}"
        )


def pack(tensors: Sequence[Any], layout: Layout) -> DTensor:
    """A DTensor from one value per local device, each of the local shape (``dtensor.pack``).

    The values are copied. As in TensorFlow, the caller makes replicas equal.
    """
    expected = layout.mesh.num_local_devices()
    if len(tensors) != expected:
        raise InvalidArgumentError(
            f"The dtensor device {device_name()} expected {expected} inputs to DTensorPack, "
            f"but got {len(tensors)}"
        )
    arrays = [np.array(as_array(t), copy=True) for t in tensors]
    first = arrays[0]
    if first.ndim != layout.rank:
        raise InvalidArgumentError(
            "Packed layout should have the same rank as the rank for each component. The rank "
            f"of each component is: {first.ndim}, while layout has rank: {layout.rank}\n"
            f"Layout: {layout.to_string()}"
        )
    for device, array in enumerate(arrays):
        if array.shape != first.shape:
            raise UnimplementedError(
                "Components of a PackedTensor must currently all have the same shape "
                f"(component {device} is {list(array.shape)}, component 0 {list(first.shape)})"
            )
        if array.dtype != first.dtype:
            raise InvalidArgumentError(
                "Components of a PackedTensor must all have the same dtype "
                f"(component {device} is {array.dtype}, component 0 {first.dtype})"
            )
    return DTensor(arrays, layout, layout.global_shape_from_local_shape(first.shape))


def unpack(tensor: Any) -> list[np.ndarray]:
    """Copies of the per-device arrays of a DTensor (``dtensor.unpack``)."""
    value = to_dtensor(tensor)
    if value is None:
        raise InvalidArgumentError(
            f"DTensorUnpack expects a tensor placed on the DTensor device: {device_name()}, "
            f"but input was placed on device: {_host_device()}"
        )
    return [c.copy() for c in value.components]


def copy_to_mesh(tensor: Any, layout: Layout, source_layout: Layout | None = None) -> DTensor:
    """``tensor`` placed on ``layout``'s mesh with ``layout`` (``source_layout`` is ignored).

    A DTensor (on any mesh) is relaid out; any other value is cut into the
    layout's blocks, Python numbers taking TensorFlow's default dtypes.
    """
    del source_layout  # deprecated in TensorFlow, and unused there too
    return relayout(tensor, layout)


def relayout(tensor: Any, layout: Layout, name: str | None = None) -> DTensor:
    """The values of ``tensor`` with ``layout`` (rule D-TE-2); ``name`` is ignored."""
    del name
    value = to_dtensor(tensor)
    if value is not None:
        return relayout_dtensor(value, layout)
    array = as_array(tensor)
    return DTensor(blocks_of(array, layout), layout, array.shape)


def relayout_like(tensor: Any, layout_tensor: Any, name: str | None = None) -> DTensor:
    """``tensor`` relaid out onto the layout of ``layout_tensor``."""
    return relayout(tensor, fetch_layout(layout_tensor), name)


def call_with_layout(
    fn: Callable[..., Any], layout: Layout | None, *args: Any, **kwargs: Any
) -> Any:
    """Call an array constructor (``np.zeros``, ``np.ones``...) and lay its result out.

    With ``layout=None`` the result is returned as is, as in TensorFlow.
    """
    if layout is None:
        return fn(*args, **kwargs)
    with default_mesh(layout.mesh):
        return relayout(fn(*args, **kwargs), layout)

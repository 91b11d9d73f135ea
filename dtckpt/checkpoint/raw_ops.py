"""``save_v2``, ``restore_v2`` and ``merge_v2_checkpoints``: TF's raw checkpoint ops.

Semantics of ``tensorflow/core/kernels/save_restore_v2_ops.cc``:

* ``save_v2(prefix, names, shape_and_slices, tensors)`` writes one
  single-shard bundle at ``prefix``; an empty spec stores a whole tensor, a
  spec such as ``"4 6 0,2:-"`` stores the tensor as that slice of a
  ``[4, 6]`` tensor. Tensors land in the data file in the order given.
* ``restore_v2(prefix, names, shape_and_slices, dtypes)`` returns the named
  tensors (or slices of them); each requested dtype must equal the stored one.
* ``merge_v2_checkpoints(prefixes, destination)`` merges bundles.

Like TensorFlow's ops they write through temporary files and renames but do
not fsync; ``fsync=True``, a dtckpt keyword, makes the files durable before
the call returns (rule S-AT-3).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..dtypes import info
from ..errors import InvalidArgumentError
from ..format.bundle_writer import BundleWriter
from ..format.merge import merge_bundles
from ..format.slices import parse_shape_and_slice
from .reader import open_bundle

__all__ = ["save_v2", "restore_v2", "merge_v2_checkpoints"]


def _same_length(what: str, names: Sequence[Any], other: Sequence[Any]) -> None:
    if len(names) != len(other):
        raise InvalidArgumentError(
            f"tensor_names has {len(names)} elements but {what} has {len(other)}"
        )


def save_v2(
    prefix: str,
    tensor_names: Sequence[str],
    shape_and_slices: Sequence[str],
    tensors: Sequence[Any],
    dtypes: Sequence[Any] | None = None,
    *,
    fsync: bool = False,
) -> None:
    """Write ``tensors`` under ``tensor_names`` to the bundle at ``prefix``.

    The TF dtype of each tensor follows from its NumPy dtype; ``dtypes``
    (TF names, enum values or NumPy dtypes; ``None`` items allowed) overrides
    it, which is how the quantized types (``qint8`` ...) that share NumPy's
    integer dtypes are written. Nothing is left at ``prefix`` if any tensor
    is rejected. ``fsync=True`` fsyncs the files and the directory.
    """
    _same_length("shape_and_slices", tensor_names, shape_and_slices)
    _same_length("tensors", tensor_names, tensors)
    if dtypes is None:
        dtypes = [None] * len(tensor_names)
    _same_length("dtypes", tensor_names, dtypes)
    with BundleWriter(os.fspath(prefix), fsync=fsync) as writer:
        for name, spec, tensor, dtype in zip(
            tensor_names, shape_and_slices, tensors, dtypes, strict=True
        ):
            parsed = parse_shape_and_slice(spec)
            if parsed is None:
                writer.add(name, tensor, dtype)
            else:
                shape, tensor_slice = parsed
                writer.add_slice(name, shape, tensor_slice, tensor, dtype)


def restore_v2(
    prefix: str,
    tensor_names: Sequence[str],
    shape_and_slices: Sequence[str],
    dtypes: Sequence[Any],
) -> list[np.ndarray]:
    """Read the named tensors (or slices) from the bundle at ``prefix``."""
    _same_length("shape_and_slices", tensor_names, shape_and_slices)
    _same_length("dtypes", tensor_names, dtypes)
    results = []
    with open_bundle(os.fspath(prefix)) as reader:  # a prefix, or one inside an archive
        for name, spec, dtype in zip(tensor_names, shape_and_slices, dtypes, strict=True):
            entry = reader.entry(name)
            wanted, stored = info(dtype), info(entry.dtype)
            if wanted.enum != stored.enum:
                raise InvalidArgumentError(
                    f"tensor_name = {name}; expected dtype {wanted.name} does not equal "
                    f"original dtype {stored.name}",
                    path=reader.prefix,
                    key=name,
                )
            parsed = parse_shape_and_slice(spec)
            if parsed is None:
                results.append(reader.read(name))
                continue
            shape, tensor_slice = parsed
            if shape != entry.shape:
                raise InvalidArgumentError(
                    f"shape in shape_and_slice spec {list(shape)} does not match the shape "
                    f"stored in checkpoint: {list(entry.shape)}",
                    path=reader.prefix,
                    key=name,
                )
            results.append(reader.read_slice(name, tensor_slice))
    return results


def merge_v2_checkpoints(
    checkpoint_prefixes: Sequence[str],
    destination_prefix: str,
    delete_old_dirs: bool = True,
    allow_missing_files: bool = False,
    *,
    fsync: bool = False,
) -> None:
    """Merge bundles into ``destination_prefix`` (TF's ``MergeV2Checkpoints``).

    Any prefix may be a URL (rules F-MG-1, S-SI-5): data files in or into a store are
    copied rather than renamed, and the merged index is created last. ``fsync=True``
    fsyncs the data files, the new index and the directory of a local destination.
    """
    if isinstance(checkpoint_prefixes, (str, bytes, os.PathLike)):
        checkpoint_prefixes = [os.fspath(checkpoint_prefixes)]
    merge_bundles(
        [os.fspath(p) for p in checkpoint_prefixes],
        os.fspath(destination_prefix),
        allow_missing_files=allow_missing_files,
        delete_old_dirs=delete_old_dirs,
        fsync=fsync,
    )

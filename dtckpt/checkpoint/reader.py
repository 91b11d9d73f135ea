"""``CheckpointReader``, ``load_checkpoint`` and ``list_variables`` with TF's semantics.

Mirrors ``tf.train.load_checkpoint`` / ``tf.train.list_variables``
(``tensorflow/python/training/checkpoint_utils.py``) and the C++
``CheckpointReader`` (``tensorflow/c/checkpoint_reader.cc``): slice keys of
partitioned tensors are hidden, and a partitioned tensor is listed with its
full shape.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..dtypes import info
from ..errors import NotFoundError
from ..format.bundle_reader import BundleReader
from ..format.naming import key_bytes, key_str
from .state import latest_checkpoint

__all__ = ["CheckpointReader", "load_checkpoint", "list_variables", "resolve_checkpoint_path"]


class CheckpointReader:
    """Reads tensors of the checkpoint at ``prefix`` (TF's ``CheckpointReader``).

    ``mmap=True`` returns read-only arrays over memory-mapped data files
    (zero-copy; checksums are still verified).
    """

    def __init__(self, prefix: str, *, mmap: bool = False) -> None:
        self._bundle = BundleReader(prefix, mmap=mmap)
        self.prefix = self._bundle.prefix

    def close(self) -> None:
        self._bundle.close()

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def bundle(self) -> BundleReader:
        """The underlying :class:`~dtckpt.format.bundle_reader.BundleReader`."""
        return self._bundle

    def has_tensor(self, key: str) -> bool:
        return self._bundle.index.is_visible(key_bytes(key))

    def get_tensor(self, key: str) -> np.ndarray:
        """The whole tensor; raises :class:`~dtckpt.errors.TensorNotFoundError` if absent."""
        return self._bundle.read(key_bytes(key))

    def get_variable_to_shape_map(self) -> dict[str, list[int]]:
        return {key_str(k): shape for k, shape in self._bundle.index.shape_map().items()}

    def get_variable_to_dtype_map(self) -> dict[str, np.dtype[Any]]:
        return {
            key_str(k): info(dtype).numpy for k, dtype in self._bundle.index.dtype_map().items()
        }


def resolve_checkpoint_path(ckpt_dir_or_file: str) -> str:
    """A directory means its latest checkpoint; anything else is a prefix."""
    path = os.fspath(ckpt_dir_or_file)
    if os.path.isdir(path):
        latest = latest_checkpoint(path)
        if latest is None:
            raise NotFoundError(
                f"Couldn't find 'checkpoint' file or checkpoints in given directory {path}",
                path=path,
            )
        return latest
    return path


def load_checkpoint(ckpt_dir_or_file: str, *, mmap: bool = False) -> CheckpointReader:
    """Open a checkpoint given its prefix or a directory with a ``checkpoint`` file."""
    return CheckpointReader(resolve_checkpoint_path(ckpt_dir_or_file), mmap=mmap)


def list_variables(ckpt_dir_or_file: str) -> list[tuple[str, list[int]]]:
    """Sorted ``(name, shape)`` pairs of every tensor in the checkpoint."""
    with load_checkpoint(ckpt_dir_or_file) as reader:
        shapes = reader.get_variable_to_shape_map()
    return [(name, shapes[name]) for name in sorted(shapes)]

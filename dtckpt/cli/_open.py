"""From a path on the command line to an open checkpoint (rule V-CL-1)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..checkpoint.reader import CheckpointReader

__all__ = ["resolve_path", "open_checkpoint"]

_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def resolve_path(path: str) -> str:
    """A SavedModel directory means its ``variables/variables`` prefix; anything else is
    left for :func:`dtckpt.load_checkpoint` (prefixes, directories with a ``checkpoint``
    file, and whatever else it learns to open)."""
    if os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, name)) for name in _SAVED_MODEL_FILES
    ):
        return os.path.join(path, "variables", "variables")
    return path


def open_checkpoint(path: str) -> CheckpointReader:
    from ..checkpoint.reader import load_checkpoint

    return load_checkpoint(resolve_path(path))

"""dtckpt: TensorFlow checkpoints (tensor bundles) in pure Python, without TensorFlow.

The names mirror TensorFlow's, so that ``tf.train.load_checkpoint`` becomes
``dtckpt.load_checkpoint`` and ``tf.raw_ops.SaveV2`` becomes ``dtckpt.save_v2``;
``dtckpt.train`` holds ``tf.train``'s checkpointing names under their own.

Importing this package does no work: each public name is imported from its
module the first time it is used, so ``dtckpt inspect`` starts without loading
the object-graph machinery, the mesh layer or Numba (kernels compile on first
use, too).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module (relative to this package) that defines it
_EXPORTS = {
    "Checkpoint": ".checkpoint.checkpoint",
    "CheckpointManager": ".checkpoint.manager",
    "CheckpointOptions": ".checkpoint.options",
    "Module": ".checkpoint.module",
    "NoDependency": ".checkpoint.data_structures",
    "Variable": ".checkpoint.variables",
    "BundleReader": ".format.bundle_reader",
    "BundleWriter": ".format.bundle_writer",
    "CheckpointReader": ".checkpoint.reader",
    "latest_checkpoint": ".checkpoint.state",
    "list_variables": ".checkpoint.reader",
    "load_checkpoint": ".checkpoint.reader",
    "load_variable": ".checkpoint.checkpoint_utils",
    "merge_v2_checkpoints": ".checkpoint.raw_ops",
    "plan_restore": ".checkpoint.checkpoint",
    "RestorePlan": ".checkpoint.plans",
    "restore_v2": ".checkpoint.raw_ops",
    "save_v2": ".checkpoint.raw_ops",
}
_SUBMODULES = ("archive", "dtensor", "errors", "interop", "train")

__all__ = [
    "archive",
    "dtensor",
    "interop",
    "train",
    "Checkpoint",
    "CheckpointManager",
    "CheckpointOptions",
    "Module",
    "NoDependency",
    "Variable",
    "BundleReader",
    "BundleWriter",
    "CheckpointReader",
    "errors",
    "latest_checkpoint",
    "list_variables",
    "load_checkpoint",
    "load_variable",
    "merge_v2_checkpoints",
    "plan_restore",
    "RestorePlan",
    "restore_v2",
    "save_v2",
    "__version__",
]

if TYPE_CHECKING:
    from . import archive, dtensor, errors, interop, train
    from .checkpoint.checkpoint import Checkpoint, plan_restore
    from .checkpoint.checkpoint_utils import load_variable
    from .checkpoint.data_structures import NoDependency
    from .checkpoint.manager import CheckpointManager
    from .checkpoint.module import Module
    from .checkpoint.options import CheckpointOptions
    from .checkpoint.plans import RestorePlan
    from .checkpoint.raw_ops import merge_v2_checkpoints, restore_v2, save_v2
    from .checkpoint.reader import CheckpointReader, list_variables, load_checkpoint
    from .checkpoint.state import latest_checkpoint
    from .checkpoint.variables import Variable
    from .format.bundle_reader import BundleReader
    from .format.bundle_writer import BundleWriter


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value: Any = importlib.import_module(f".{name}", __name__)
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

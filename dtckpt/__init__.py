"""dtckpt: TensorFlow checkpoints (tensor bundles) in pure Python, without TensorFlow.

The names mirror TensorFlow's, so that ``tf.train.load_checkpoint`` becomes
``dtckpt.load_checkpoint`` and ``tf.raw_ops.SaveV2`` becomes ``dtckpt.save_v2``.
Importing this package does no work beyond importing NumPy: Numba kernels
compile on first use.
"""

from __future__ import annotations

from . import dtensor, errors
from .checkpoint.checkpoint import Checkpoint
from .checkpoint.manager import CheckpointManager
from .checkpoint.module import Module
from .checkpoint.options import CheckpointOptions
from .checkpoint.raw_ops import merge_v2_checkpoints, restore_v2, save_v2
from .checkpoint.reader import CheckpointReader, list_variables, load_checkpoint
from .checkpoint.state import latest_checkpoint
from .checkpoint.variables import Variable
from .format.bundle_reader import BundleReader
from .format.bundle_writer import BundleWriter

__version__ = "0.1.0"

__all__ = [
    "dtensor",
    "Checkpoint",
    "CheckpointManager",
    "CheckpointOptions",
    "Module",
    "Variable",
    "BundleReader",
    "BundleWriter",
    "CheckpointReader",
    "errors",
    "latest_checkpoint",
    "list_variables",
    "load_checkpoint",
    "merge_v2_checkpoints",
    "restore_v2",
    "save_v2",
    "__version__",
]

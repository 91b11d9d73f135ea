"""``tf.train``'s checkpointing names, so a program ports by changing its import (O-TF-1).

::

    import dtckpt.train as train          # was: tf.train
    ckpt = train.Checkpoint(model=model)
    manager = train.CheckpointManager(ckpt, "/tmp/run", max_to_keep=3)
    train.CheckpointView(manager.save()).children(0)

``Checkpoint``, ``CheckpointManager``, ``CheckpointOptions``, ``CheckpointView``,
``TrackableView``, ``checkpoints_iterator``, ``get_checkpoint_state``,
``latest_checkpoint``, ``list_variables``, ``load_checkpoint``, ``load_variable`` and
``experimental.PythonState`` are TensorFlow 2's; ``update_checkpoint_state``,
``generate_checkpoint_state_proto`` and ``checkpoint_exists`` are
``tf.compat.v1.train``'s. The rest of ``tf.train`` (``Example``, ``Coordinator``,
``ClusterSpec``...) is not about checkpoints and has no counterpart. Importing
this package loads nothing until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> module (relative to the dtckpt package) that defines it
_EXPORTS = {
    "Checkpoint": "..checkpoint.checkpoint",
    "CheckpointManager": "..checkpoint.manager",
    "CheckpointOptions": "..checkpoint.options",
    "CheckpointView": "..checkpoint.views",
    "TrackableView": "..checkpoint.views",
    "checkpoints_iterator": "..checkpoint.checkpoint_utils",
    "load_variable": "..checkpoint.checkpoint_utils",
    "update_checkpoint_state": "..checkpoint.checkpoint_utils",
    "get_checkpoint_state": "..checkpoint.state",
    "latest_checkpoint": "..checkpoint.state",
    "checkpoint_exists": "..checkpoint.state",
    "generate_checkpoint_state_proto": "..checkpoint.state",
    "list_variables": "..checkpoint.reader",
    "load_checkpoint": "..checkpoint.reader",
}

__all__ = [
    "Checkpoint",
    "CheckpointManager",
    "CheckpointOptions",
    "CheckpointView",
    "TrackableView",
    "checkpoint_exists",
    "checkpoints_iterator",
    "experimental",
    "generate_checkpoint_state_proto",
    "get_checkpoint_state",
    "latest_checkpoint",
    "list_variables",
    "load_checkpoint",
    "load_variable",
    "update_checkpoint_state",
]

if TYPE_CHECKING:
    from ..checkpoint.checkpoint import Checkpoint
    from ..checkpoint.checkpoint_utils import (
        checkpoints_iterator,
        load_variable,
        update_checkpoint_state,
    )
    from ..checkpoint.manager import CheckpointManager
    from ..checkpoint.options import CheckpointOptions
    from ..checkpoint.reader import list_variables, load_checkpoint
    from ..checkpoint.state import (
        checkpoint_exists,
        generate_checkpoint_state_proto,
        get_checkpoint_state,
        latest_checkpoint,
    )
    from ..checkpoint.views import CheckpointView, TrackableView
    from . import experimental


def __getattr__(name: str) -> Any:
    if name == "experimental":
        value: Any = importlib.import_module(".experimental", __name__)
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

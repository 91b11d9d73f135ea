"""``tf.train.experimental``: ``PythonState`` (the sharding policies have no counterpart:
dtckpt writes one data shard per bundle)."""

from __future__ import annotations

from ..checkpoint.python_state import PythonState

__all__ = ["PythonState"]

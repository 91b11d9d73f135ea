"""``tf.train``'s checkpoint helpers that work on paths (rule O-TF-1).

``load_variable``, ``checkpoints_iterator`` and ``wait_for_new_checkpoint``
(``tensorflow/python/training/checkpoint_utils.py``), and the public
``update_checkpoint_state`` of ``tf.compat.v1.train``
(``tensorflow/python/checkpoint/checkpoint_management.py``), which, unlike the
internal twin the savers use, keeps absolute paths absolute.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .reader import load_checkpoint
from .state import latest_checkpoint, update_checkpoint_state_internal

__all__ = [
    "load_variable",
    "wait_for_new_checkpoint",
    "checkpoints_iterator",
    "update_checkpoint_state",
]

_LOG = logging.getLogger("dtckpt")


def load_variable(ckpt_dir_or_file: str, name: str) -> np.ndarray:
    """The value stored under ``name`` (a trailing ``:0`` is ignored, as in TensorFlow)."""
    if name.endswith(":0"):
        name = name[:-2]
    with load_checkpoint(ckpt_dir_or_file) as reader:
        return reader.get_tensor(name)


def wait_for_new_checkpoint(
    checkpoint_dir: str,
    last_checkpoint: str | None = None,
    seconds_to_sleep: float = 1,
    timeout: float | None = None,
) -> str | None:
    """Poll ``latest_checkpoint(checkpoint_dir)`` until it names a checkpoint other than
    ``last_checkpoint``; ``None`` once ``timeout`` seconds have passed."""
    _LOG.info("Waiting for new checkpoint at %s", checkpoint_dir)
    stop_time = time.time() + timeout if timeout is not None else None
    while True:
        checkpoint_path = latest_checkpoint(checkpoint_dir)
        if checkpoint_path is None or checkpoint_path == last_checkpoint:
            if stop_time is not None and time.time() + seconds_to_sleep > stop_time:
                return None
            time.sleep(seconds_to_sleep)
        else:
            _LOG.info("Found new checkpoint at %s", checkpoint_path)
            return checkpoint_path


def checkpoints_iterator(
    checkpoint_dir: str,
    min_interval_secs: float = 0,
    timeout: float | None = None,
    timeout_fn: Callable[[], Any] | None = None,
) -> Iterator[str]:
    """Yield each new latest checkpoint of ``checkpoint_dir`` as it appears.

    As ``tf.train.checkpoints_iterator``: at most one path every
    ``min_interval_secs``; after ``timeout`` seconds without a new checkpoint the
    iterator stops, unless ``timeout_fn`` is given and returns false (then it waits
    again). ``timeout_fn`` is also asked after each checkpoint yielded.
    """
    checkpoint_path = None
    while True:
        new_checkpoint_path = wait_for_new_checkpoint(
            checkpoint_dir, checkpoint_path, timeout=timeout
        )
        if new_checkpoint_path:
            start = time.time()
            checkpoint_path = new_checkpoint_path
            yield checkpoint_path
            time_to_next = start + min_interval_secs - time.time()
            if time_to_next > 0:
                time.sleep(time_to_next)
        elif timeout_fn is None:
            _LOG.info("Timed-out waiting for a checkpoint (without timeout_fn).")
            return
        if timeout_fn is not None and timeout_fn():
            _LOG.info("Done. No new checkpoints will be generated.")
            return


def update_checkpoint_state(
    save_dir: str,
    model_checkpoint_path: str,
    all_model_checkpoint_paths: list[str] | None = None,
    latest_filename: str | None = None,
    all_model_checkpoint_timestamps: list[float] | None = None,
    last_preserved_timestamp: float | None = None,
) -> None:
    """Write ``save_dir``'s state file as ``tf.compat.v1.train.update_checkpoint_state``:
    paths as given (an absolute path stays absolute; with a relative ``save_dir``,
    relative paths are made relative to it)."""
    update_checkpoint_state_internal(
        os.fspath(save_dir),
        model_checkpoint_path,
        all_model_checkpoint_paths,
        latest_filename,
        save_relative_paths=False,
        all_model_checkpoint_timestamps=all_model_checkpoint_timestamps,
        last_preserved_timestamp=last_preserved_timestamp,
    )

"""Process-wide thread pools, created on first use (never at import time).

dtckpt overlaps work that releases the GIL: checksums beside reads and writes
(``checksum``), the devices' block reads and bundle writes of a DTensor
checkpoint (``io``), and asynchronous checkpoint writes (``async``, one
worker, so that background saves happen in the order they were made).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["pool", "in_pool_thread", "CORES"]

#: Cores this process may use.
CORES = max(1, os.cpu_count() or 1)

_SIZES = {"checksum": CORES, "io": max(2, min(8, CORES)), "async": 1}
_POOLS: dict[str, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()
_PREFIX = "dtckpt-pool-"


def pool(name: str) -> ThreadPoolExecutor:
    """The shared pool ``name`` (``"checksum"``, ``"io"`` or ``"async"``)."""
    existing = _POOLS.get(name)
    if existing is not None:
        return existing
    with _LOCK:
        if name not in _POOLS:
            _POOLS[name] = ThreadPoolExecutor(
                max_workers=_SIZES[name], thread_name_prefix=f"{_PREFIX}{name}"
            )
        return _POOLS[name]


def in_pool_thread() -> bool:
    """Whether the caller runs on a worker of one of these pools."""
    return threading.current_thread().name.startswith(_PREFIX)

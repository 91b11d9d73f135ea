"""CRC-32C of large buffers in parallel threads.

The ``crc32c`` package releases the GIL while it hashes (measured: a pure-Python loop keeps
running in another thread during a 256 MiB call), so chunks hashed in a thread pool run on
separate cores; their CRCs are then joined with a ``combine`` function, which each backend
supplies. Buffers at most ``SINGLE_CALL_MAX`` bytes take one call: below that the thread
start-up costs more than the second core saves.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ._checks import as_byte_array, check_crc
from ._crc32c import crc32c_module

_crc32c = crc32c_module()

#: Buffers up to this size are hashed by a single ``crc32c.crc32c`` call in ``crc32c_value``
#: (on a 2-core machine two threads only break even at about 32 MiB).
SINGLE_CALL_MAX = 32 << 20
#: The largest default chunk: smaller chunks than one per worker balance the threads better.
DEFAULT_CHUNK = 32 << 20

Combine = Callable[[int, int, int], int]


def parallel_crc(
    buf: object, value: int, chunk_size: int | None, workers: int, combine: Combine
) -> int:
    """Hash ``buf`` as chunks of ``chunk_size`` bytes on ``workers`` threads, continuing ``value``.

    ``chunk_size=None`` gives each worker one equal share, at most ``DEFAULT_CHUNK`` bytes.
    """
    arr = as_byte_array(buf, "buf")
    value = check_crc(value, "value")
    workers = operator.index(workers)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    size = arr.size
    if chunk_size is None:
        chunk_size = max(1, min(DEFAULT_CHUNK, math.ceil(size / workers)))
    chunk_size = operator.index(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if workers == 1 or size <= chunk_size:
        return int(_crc32c.crc32c(arr, value))
    view = arr.data
    chunks = [view[start : start + chunk_size] for start in range(0, size, chunk_size)]
    # The first chunk continues ``value``; the others start from an empty message.
    starts = [value] + [0] * (len(chunks) - 1)
    with ThreadPoolExecutor(max_workers=min(workers, len(chunks))) as pool:
        crcs = list(pool.map(_crc32c.crc32c, chunks, starts))
    crc = int(crcs[0])
    for chunk, chunk_crc in zip(chunks[1:], crcs[1:], strict=True):
        crc = combine(crc, int(chunk_crc), len(chunk))
    return crc


def crc_value(buf: object, value: int, combine: Combine) -> int:
    """CRC-32C of ``buf`` continuing ``value``, in parallel only where it pays."""
    arr = as_byte_array(buf, "buf")
    if arr.size <= SINGLE_CALL_MAX:
        return int(_crc32c.crc32c(arr, check_crc(value, "value")))
    return parallel_crc(arr, value, None, 2, combine)

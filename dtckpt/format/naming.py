"""File names of a bundle (rule F-FN-1; ``tensor_bundle/naming.cc``).

::

    PREFIX.index                         the SSTable of entries
    PREFIX.data-00000-of-00002           data shard 0 of 2   (%05d, at least 5 digits)
    PREFIX.data-00001-of-00002
"""

from __future__ import annotations

import re

__all__ = ["index_filename", "data_filename", "DATA_SUFFIX_RE", "key_bytes", "key_str"]

DATA_SUFFIX_RE = re.compile(r"\.data-(\d{5,})-of-(\d{5,})$")


def index_filename(prefix: str) -> str:
    return f"{prefix}.index"


def data_filename(prefix: str, shard_id: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard_id:05d}-of-{num_shards:05d}"


def key_bytes(key: str | bytes) -> bytes:
    """A tensor key as stored: ``str`` keys are UTF-8, and bytes that are not valid UTF-8
    round-trip through :func:`key_str` (``surrogateescape``)."""
    return key.encode("utf-8", errors="surrogateescape") if isinstance(key, str) else bytes(key)


def key_str(key: bytes) -> str:
    """The ``str`` form of a stored key, as ``CheckpointReader`` lists it."""
    return key.decode("utf-8", errors="surrogateescape")

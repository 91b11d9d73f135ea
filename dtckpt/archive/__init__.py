"""One seekable, zstandard-compressed file holding a whole checkpoint (``dtckpt pack``).

::

    pack("train/", "train.dtar")          every file of the directory, frames of <= 4 MiB,
                                          float tensors byte-shuffled, then zstd
    unpack("train.dtar", "restored/")     the same files, byte for byte
    load_checkpoint("train.dtar")         tensors read straight from the archive, each
    load_checkpoint("train.dtar::ckpt-2") decoding only the frames that hold it

The byte layout and its rules (``A-*``) are in ``spec/archive.md``: ``layout`` encodes and
decodes the header, table of contents and footer, ``frames`` one frame; ``members`` decides
what to pack and where to cut; ``writer``, ``reader``, ``unpacking`` and ``source`` do the I/O,
and ``paths`` tells archives from other paths.

Importing this package loads nothing but itself: each name is imported on first use. No
module is named after a function it exports (``unpack`` lives in ``unpacking``), so importing
a module never hides the function of the same name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ArchiveReader",
    "PackReport",
    "UnpackReport",
    "is_archive",
    "pack",
    "unpack",
]

_EXPORTS = {
    "ArchiveReader": ".reader",
    "PackReport": ".writer",
    "UnpackReport": ".unpacking",
    "is_archive": ".paths",
    "pack": ".writer",
    "unpack": ".unpacking",
}

if TYPE_CHECKING:
    from .paths import is_archive
    from .reader import ArchiveReader
    from .unpacking import UnpackReport, unpack
    from .writer import PackReport, pack


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""One frame of an archive: a chunk of a member file, filtered, then zstd-compressed (A-FR-*).

::

    raw chunk (raw_length bytes of a member, from its offset)
       | crc32c ------------------------------------> frame record's crc32c (A-FR-2)
       | filter: none, or byte-shuffle of the whole elements (A-FR-3);
       |         a tail shorter than one element stays as it is
       v
    filtered chunk --zstd, content size in the frame header--> frame bytes (A-FR-1)

Decoding runs the other way and checks, in order: the zstd frame header's content size
equals ``raw_length`` (before zstd allocates it), zstd decodes the frame, and the CRC-32C of
the unfiltered bytes equals the record's. Compression and decompression contexts are kept
per thread: zstd's are not thread-safe, and frames are coded on several threads at once.
"""

from __future__ import annotations

import threading

import numpy as np
import zstandard

from .. import kernels
from ..errors import DataLossError
from ..format.crc import crc32c
from ..pools import CORES
from .layout import FILTER_NONE, FILTER_SHUFFLE

__all__ = ["encode_frame", "decode_frame", "compressor", "combine_crc", "WORKERS"]

#: Threads that code frames at once, in ``pack``, ``unpack`` and reads. Each holds a frame or
#: two and a zstd context, so the count is capped: memory then stays a few tens of MiB on
#: any machine, and four cores already compress faster than most disks write.
WORKERS = min(CORES, 4)

_local = threading.local()


def compressor(level: int) -> zstandard.ZstdCompressor:
    """This thread's compression context for ``level`` (frames carry their content size)."""
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    cctx = cache.get(level)
    if cctx is None:
        cctx = cache[level] = zstandard.ZstdCompressor(
            level=level, write_content_size=True, write_checksum=False
        )
    return cctx


def _decompressor() -> zstandard.ZstdDecompressor:
    dctx: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if dctx is None:
        dctx = _local.decompressor = zstandard.ZstdDecompressor()
    return dctx


def combine_crc(crc_a: int, crc_b: int, len_b: int) -> int:
    """The CRC-32C of A+B from the CRCs of A and B (a file's CRC from its frames', A-PK-4).

    One combination per frame is too little work to load the compiled kernels for, so this
    is always the NumPy twin (as ``kernels.sized`` picks for small jobs).
    """
    return int(kernels.sized(0).crc32c_combine(crc_a, crc_b, len_b))


def encode_frame(raw: np.ndarray, filter_id: int, element_size: int, level: int) -> bytes:
    """Filter and compress the 1-D ``uint8`` array ``raw`` into one zstd frame."""
    data: np.ndarray = raw
    if filter_id == FILTER_SHUFFLE:
        data = np.empty_like(raw)
        whole = raw.size - raw.size % element_size
        kernels.sized(whole).shuffle_bytes(raw[:whole], element_size, data[:whole])
        data[whole:] = raw[whole:]
    elif filter_id != FILTER_NONE:
        raise ValueError(f"unknown filter {filter_id}")
    return bytes(compressor(level).compress(data))


def decode_frame(
    frame: bytes | np.ndarray,
    raw_length: int,
    crc: int,
    filter_id: int,
    element_size: int,
    out: np.ndarray,
) -> None:
    """Decode one frame into ``out`` (``raw_length`` writable bytes) and check its CRC-32C.

    The record fields were checked by ``layout.decode_toc``. Damage raises
    :class:`DataLossError` with offset 0 (the frame's start; the caller locates it).
    """
    try:
        content = zstandard.frame_content_size(frame)
    except zstandard.ZstdError:
        raise DataLossError("not a zstd frame (bad frame header)", offset=0) from None
    if content != raw_length:
        what = "no content size" if content < 0 else f"content size {content}"
        raise DataLossError(
            f"zstd frame header has {what}, the table of contents says {raw_length}", offset=0
        )
    try:
        decoded = _decompressor().decompress(frame)
    except zstandard.ZstdError as exc:
        raise DataLossError(f"zstd frame does not decode: {exc}", offset=0) from None
    if len(decoded) != raw_length:
        raise DataLossError(
            f"zstd frame decodes to {len(decoded)} bytes, expected {raw_length}", offset=0
        )
    plain = np.frombuffer(decoded, dtype=np.uint8)
    if filter_id == FILTER_SHUFFLE:
        whole = raw_length - raw_length % element_size
        kernels.sized(whole).unshuffle_bytes(plain[:whole], element_size, out[:whole])
        out[whole:] = plain[whole:]
    else:
        out[...] = plain
    actual = crc32c(out)
    if actual != crc:
        raise DataLossError(
            f"frame checksum does not match: stored {crc:#010x}, computed {actual:#010x}",
            offset=0,
        )

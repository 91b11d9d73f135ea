"""CRC-32C and TensorFlow's masking of stored checksums.

CRC-32C is the Castagnoli CRC (reflected polynomial ``0x82F63B78``); the
``crc32c`` package computes it with the CPU's CRC instruction where there is
one. TensorFlow never stores a raw CRC next to the data it covers: it stores
``mask(crc)`` (rule F-CRC-2), so that a CRC computed over bytes that
themselves contain CRCs does not degenerate::

    mask(c)   = ((c >> 15) | (c << 17)) + 0xa282ead8      (mod 2**32)
    unmask(m) = rotate_left(m - 0xa282ead8, 15)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..kernels._crc32c import crc32c_module

_crc32c = crc32c_module()

#: Anything exposing contiguous bytes: what the checksum functions accept.
Buffer = bytes | bytearray | memoryview | npt.NDArray[np.uint8]

__all__ = ["MASK_DELTA", "crc32c", "mask", "unmask", "masked_crc32c"]

MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def crc32c(data: Buffer, value: int = 0) -> int:
    """CRC-32C of ``data`` continuing the finished CRC ``value`` (TF's ``Extend``; F-CRC-1)."""
    return int(_crc32c.crc32c(data, value))


def mask(crc: int) -> int:
    """TF's ``crc32c::Mask`` (rule F-CRC-2)."""
    return ((((crc >> 15) | (crc << 17)) & _U32) + MASK_DELTA) & _U32


def unmask(masked: int) -> int:
    """Inverse of :func:`mask`."""
    rot = (masked - MASK_DELTA) & _U32
    return ((rot >> 17) | (rot << 15)) & _U32


def masked_crc32c(data: Buffer) -> int:
    """``mask(crc32c(data))``, the value stored in block trailers and entries."""
    return mask(int(_crc32c.crc32c(data)))

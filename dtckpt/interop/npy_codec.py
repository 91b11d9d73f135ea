"""The header of a NumPy ``.npy`` array (rules I-NY-1, I-NY-2): bytes in, bytes out.

::

    offset 0       93 4e 55 4d 50 59     magic "\\x93NUMPY"
           6       MM                    major version: 1, 2 or 3
           7       00                    minor version
           8       u16le (v1) | u32le (v2, v3): HEADER_LEN
           10|12   HEADER_LEN bytes      a Python dict literal, ASCII (v1, v2) or UTF-8 (v3),
                   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
                                         padded with spaces, ending in "\\n", so that the
                                         array bytes start at a multiple of 64
           header_size                   numel * itemsize bytes, C order (Fortran order
                                         if the flag says so)

Only the bytes are handled here; which NumPy dtypes stand for which TensorFlow
dtypes is the business of :mod:`dtckpt.interop.npz_io`. Source of the layout:
NumPy's ``numpy/lib/format.py`` (format versions 1.0 to 3.0).
"""

from __future__ import annotations

import ast
import struct
from dataclasses import dataclass

from ..errors import DataLossError, InvalidArgumentError, UnimplementedError

__all__ = [
    "MAGIC",
    "ARRAY_ALIGN",
    "MAX_HEADER_LEN",
    "PREAMBLE_SIZE",
    "NpyHeader",
    "encode_npy_header",
    "decode_npy_preamble",
    "decode_npy_header",
]

# Rule I-NY-1: the fixed part of every header.
MAGIC = b"\x93NUMPY"
#: The array bytes start at a multiple of this (NumPy's ``ARRAY_ALIGN``).
ARRAY_ALIGN = 64
#: Enough bytes to know a header's total size, whatever its version.
PREAMBLE_SIZE = 12
_LENGTH_FORMATS = {1: "<H", 2: "<I", 3: "<I"}
#: Rule I-NY-2: longer dict literals are refused before they are parsed. NumPy
#: itself refuses more than 10000 bytes unless told otherwise; 64 KiB leaves
#: room for any real shape.
MAX_HEADER_LEN = 1 << 16
_KEYS = ("descr", "fortran_order", "shape")


@dataclass(frozen=True)
class NpyHeader:
    """A decoded header: ``header_size`` is the offset of the first array byte."""

    descr: str
    fortran_order: bool
    shape: tuple[int, ...]
    header_size: int


def encode_npy_header(descr: str, shape: tuple[int, ...], fortran_order: bool = False) -> bytes:
    """The header NumPy would accept for an array of ``descr`` and ``shape`` (rule I-NY-1).

    Version 1.0 is written whenever the dict fits its 16-bit length, else 2.0.
    """
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise InvalidArgumentError(f"negative dimension in shape {list(dims)}")
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran_order}, 'shape': {dims!r}, }}"
    body = text.encode("ascii")
    version = 1 if _padded_length(1, len(body)) <= 0xFFFF else 2
    length = _padded_length(version, len(body))
    return (
        MAGIC
        + bytes((version, 0))
        + struct.pack(_LENGTH_FORMATS[version], length)
        + body
        + b" " * (length - len(body) - 1)
        + b"\n"
    )


def _padded_length(version: int, body: int) -> int:
    """HEADER_LEN for a dict of ``body`` bytes: room for the newline, then up to alignment."""
    fixed = len(MAGIC) + 2 + struct.calcsize(_LENGTH_FORMATS[version])
    return body + 1 + (-(fixed + body + 1) % ARRAY_ALIGN)


def decode_npy_preamble(data: bytes) -> tuple[int, int]:
    """``(version, header_size)`` from the first :data:`PREAMBLE_SIZE` bytes (rule I-NY-2).

    ``header_size`` counts every byte before the array data, so a reader
    knows how much more to read before calling :func:`decode_npy_header`.
    """
    if len(data) < 10:
        raise DataLossError(f"a .npy header needs at least 10 bytes, found {len(data)}", offset=0)
    if data[:6] != MAGIC:
        raise DataLossError(f"not a .npy array: magic is {bytes(data[:6])!r}", offset=0)
    version, minor = data[6], data[7]
    if version not in _LENGTH_FORMATS or minor != 0:
        raise UnimplementedError(
            f".npy format version {version}.{minor} is not supported", offset=6
        )
    length_format = _LENGTH_FORMATS[version]
    fixed = 8 + struct.calcsize(length_format)
    if len(data) < fixed:
        raise DataLossError(f"a version {version} .npy header needs {fixed} bytes", offset=0)
    (length,) = struct.unpack_from(length_format, data, 8)
    if length > MAX_HEADER_LEN:
        raise DataLossError(
            f".npy header claims {length} bytes; at most {MAX_HEADER_LEN} are accepted", offset=8
        )
    return version, fixed + length


def decode_npy_header(data: bytes) -> NpyHeader:
    """Decode a whole header (``data`` may continue into the array bytes).

    The dict literal is evaluated by :func:`ast.literal_eval`, which builds
    only constants and never runs code, after its length is bounded; its keys
    and value types are then checked exactly (rule I-NY-2).
    """
    version, header_size = decode_npy_preamble(data)
    if len(data) < header_size:
        raise DataLossError(
            f".npy header needs {header_size} bytes, only {len(data)} are present", offset=0
        )
    fixed = header_size - struct.unpack_from(_LENGTH_FORMATS[version], data, 8)[0]
    raw = bytes(data[fixed:header_size])
    try:
        text = raw.decode("utf-8" if version == 3 else "latin-1")
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as exc:
        raise DataLossError(f".npy header is not a dict literal: {exc}", offset=fixed) from None
    descr, fortran_order, shape = _check_dict(value, fixed)
    return NpyHeader(descr, fortran_order, shape, header_size)


def _check_dict(value: object, offset: int) -> tuple[str, bool, tuple[int, ...]]:
    if not isinstance(value, dict) or sorted(value) != list(_KEYS):
        raise DataLossError(
            f".npy header must be a dict with exactly the keys {list(_KEYS)}", offset=offset
        )
    descr, fortran_order, shape = value["descr"], value["fortran_order"], value["shape"]
    if not isinstance(descr, str):
        # Structured dtypes are written as lists of fields: no tensor has one.
        raise UnimplementedError(f".npy descr {descr!r} is a structured dtype", offset=offset)
    if not isinstance(fortran_order, bool):
        raise DataLossError(f".npy fortran_order is {fortran_order!r}, not a bool", offset=offset)
    if not isinstance(shape, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise DataLossError(f".npy shape {shape!r} is not a tuple of sizes", offset=offset)
    return descr, fortran_order, shape

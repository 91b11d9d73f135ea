"""The header of a ``.safetensors`` file (rules I-ST-1, I-ST-5): bytes in, bytes out.

::

    offset 0      u64le N                       length of the JSON header
           8      N bytes of UTF-8 JSON         {"__metadata__": {"k": "v", ...},
                                                 "KEY": {"dtype": "F32", "shape": [2, 3],
                                                         "data_offsets": [BEGIN, END]}, ...}
                                                padded with spaces (0x20) to a multiple of 8
           8 + N  the byte buffer               tensor bytes, little-endian, C order;
                                                BEGIN/END are relative to its start, and the
                                                ranges tile it exactly: no holes, no overlaps

``__metadata__`` is optional and maps strings to strings. The rules follow
the ``safetensors`` package, version 0.8 (its ``README.md`` "Format" section
and ``safetensors/src/tensor.rs``): a header of at most 100,000,000 bytes that
starts with ``{``, no duplicate keys, every range exactly as long as its
dtype and shape need, the last range ending at the end of the file.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataLossError, InvalidArgumentError, UnimplementedError
from ..format.index import element_count

__all__ = [
    "LENGTH_SIZE",
    "MAX_HEADER_SIZE",
    "METADATA_KEY",
    "DTYPE_SIZES",
    "UNSUPPORTED_DTYPES",
    "SafetensorsEntry",
    "SafetensorsHeader",
    "encode_safetensors_header",
    "decode_header_length",
    "decode_safetensors_header",
]

# Rule I-ST-1.
LENGTH_SIZE = 8
HEADER_ALIGN = 8
METADATA_KEY = "__metadata__"
#: Dimensions of a shape shown in an error message at most.
_SHOWN_DIMS = 16
#: Rule I-ST-5: the reference reader refuses longer headers (``MAX_HEADER_SIZE``).
MAX_HEADER_SIZE = 100_000_000

#: Element size in bytes of every byte-aligned dtype safetensors 0.8 defines.
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "F8_E4M3FNUZ": 1,
    "F8_E5M2FNUZ": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "C64": 8,
    "F64": 8,
    "I64": 8,
    "U64": 8,
}
#: Defined by safetensors but packed below one byte per element; dtckpt does
#: not decode them (rule I-ST-2).
UNSUPPORTED_DTYPES = frozenset({"F4", "F6_E2M3", "F6_E3M2"})


@dataclass(frozen=True)
class SafetensorsEntry:
    """One tensor of the header; ``begin``/``end`` are relative to the byte buffer."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    """A decoded header: entries in buffer order, the metadata, where the buffer starts."""

    entries: tuple[SafetensorsEntry, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    data_start: int = LENGTH_SIZE


def encode_safetensors_header(
    entries: list[SafetensorsEntry], metadata: dict[str, str] | None = None
) -> bytes:
    """The length word and JSON header for ``entries`` (rule I-ST-1).

    Entries are written in the order given, which should be buffer order.
    The JSON is padded with spaces so that the buffer starts at a multiple of
    8, as the reference writer does.
    """
    document: dict[str, Any] = {}
    if metadata:
        document[METADATA_KEY] = dict(metadata)
    for entry in entries:
        if entry.key == METADATA_KEY or entry.key in document:
            raise InvalidArgumentError(
                "key is reserved or repeated in a safetensors header", key=entry.key
            )
        if entry.dtype not in DTYPE_SIZES:
            raise InvalidArgumentError(f"unknown safetensors dtype {entry.dtype!r}", key=entry.key)
        document[entry.key] = {
            "dtype": entry.dtype,
            "shape": list(entry.shape),
            "data_offsets": [entry.begin, entry.end],
        }
    try:
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(f"a key or metadata value is not valid UTF-8: {exc}") from None
    body += b" " * (-len(body) % HEADER_ALIGN)
    return struct.pack("<Q", len(body)) + body


def decode_header_length(data: bytes, file_size: int) -> int:
    """``N`` from the first 8 bytes, checked against the file and the 100 MB bound."""
    if len(data) < LENGTH_SIZE or file_size < LENGTH_SIZE:
        raise DataLossError(
            f"a safetensors file starts with an 8-byte header length; the file has "
            f"{file_size} bytes",
            offset=0,
        )
    (length,) = struct.unpack_from("<Q", data, 0)
    if length > MAX_HEADER_SIZE:
        raise DataLossError(
            f"header length {length} exceeds the limit of {MAX_HEADER_SIZE} bytes", offset=0
        )
    if LENGTH_SIZE + length > file_size:
        raise DataLossError(
            f"header length {length} runs past the end of the {file_size}-byte file", offset=0
        )
    return int(length)


def decode_safetensors_header(body: bytes, *, data_size: int) -> SafetensorsHeader:
    """Decode and validate the JSON header ``body`` (rule I-ST-5).

    ``data_size`` is the length of the byte buffer that follows the header.
    Errors carry the tensor key where one is to blame; their offsets are file
    offsets (the header starts at byte 8).
    """
    if not body[:1] == b"{":
        raise DataLossError("safetensors header does not start with '{'", offset=LENGTH_SIZE)
    try:
        document = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DataLossError(
            f"safetensors header is not valid JSON: {exc}", offset=LENGTH_SIZE
        ) from None
    if not isinstance(document, dict):
        raise DataLossError("safetensors header is not a JSON object", offset=LENGTH_SIZE)
    metadata = _metadata(document.pop(METADATA_KEY, None))
    entries = sorted(
        (_entry(key, value) for key, value in document.items()),
        key=lambda e: (e.begin, e.end),
    )
    _check_tiling(entries, data_size)
    return SafetensorsHeader(tuple(entries), metadata, LENGTH_SIZE + len(body))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise DataLossError(
            "__metadata__ must map strings to strings", key=METADATA_KEY, offset=LENGTH_SIZE
        )
    return dict(value)


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry(key: str, value: Any) -> SafetensorsEntry:
    where: dict[str, Any] = {"key": key, "offset": LENGTH_SIZE}
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise DataLossError("entry must have exactly dtype, shape and data_offsets", **where)
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if dtype in UNSUPPORTED_DTYPES:
        raise UnimplementedError(
            f"safetensors dtype {dtype} (below one byte) is not supported", **where
        )
    if dtype not in DTYPE_SIZES:
        raise DataLossError(f"unknown safetensors dtype {dtype!r}", **where)
    if not isinstance(shape, list) or not all(_is_size(d) for d in shape):
        raise DataLossError(f"shape {shape!r} is not a list of sizes", **where)
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_size, offsets))):
        raise DataLossError(f"data_offsets {offsets!r} is not [BEGIN, END]", **where)
    begin, end = offsets
    numel = element_count(shape)  # stops above int64: linear in the rank (rule H-BD-4)
    needs = "more than 2**63" if numel is None else str(numel * DTYPE_SIZES[dtype])
    if numel is None or end < begin or end - begin != numel * DTYPE_SIZES[dtype]:
        raise DataLossError(
            f"data_offsets [{begin}, {end}] hold {end - begin} bytes; {dtype} "
            f"{_show_shape(shape)} needs {needs}",
            **where,
        )
    return SafetensorsEntry(key, dtype, tuple(shape), begin, end)


def _show_shape(shape: list[int]) -> str:
    if len(shape) <= _SHOWN_DIMS:
        return str(shape)
    return f"[{', '.join(str(d) for d in shape[:_SHOWN_DIMS])}, ... ({len(shape)} dims)]"


def _check_tiling(entries: list[SafetensorsEntry], data_size: int) -> None:
    position = 0
    for entry in entries:
        if entry.begin != position:
            problem = "overlaps the previous tensor" if entry.begin < position else "leaves a hole"
            raise DataLossError(
                f"data_offsets [{entry.begin}, {entry.end}] {problem} (expected to start at "
                f"{position})",
                key=entry.key,
                offset=LENGTH_SIZE,
            )
        position = entry.end
    if position != data_size:
        raise DataLossError(
            f"tensors cover {position} bytes of a {data_size}-byte buffer (the last range must "
            "end at the end of the file)",
            offset=LENGTH_SIZE,
        )

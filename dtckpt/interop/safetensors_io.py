"""``.safetensors`` files as a conversion source and target (rules I-ST-1 to I-ST-5).

::

    write_safetensors(source, PATH)
      1. every tensor checked, every dtype mapped, all offsets computed   (nothing written yet)
      2. [ u64 N ][ JSON header, padded ]                                 written once
      3. [ tensor bytes in header order ]                                 streamed chunk by chunk
         ordered by element size, largest first, then key: each tensor starts at
         a multiple of its element size, as the reference writer arranges

    read_safetensors(PATH)
      header decoded and validated, then each tensor read by positioned reads in chunks

TensorFlow dtypes safetensors lacks travel under a carrier dtype of the same
bytes, with their TF name recorded in ``__metadata__``; the object graph of a
``tf.train.Checkpoint`` travels base64-encoded in ``__metadata__`` too, since
safetensors holds no strings.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dtypes import DataType, DTypeInfo, info
from ..errors import (
    CheckpointError,
    DataLossError,
    InvalidArgumentError,
    UnimplementedError,
)
from ..format.index import MAX_RANK
from ..format.streams import read_into
from ..progress import NULL_PROGRESS, Progress
from ..storage.staging import open_any
from . import tensors as _tensors
from .safetensors_codec import (
    DTYPE_SIZES,
    LENGTH_SIZE,
    METADATA_KEY,
    SafetensorsEntry,
    decode_header_length,
    decode_safetensors_header,
    encode_safetensors_header,
)
from .tensors import (
    OBJECT_GRAPH_KEY,
    ConvertReport,
    TensorSource,
    TensorStream,
    Unsupported,
    atomic_path,
    counted,
    select_tensors,
)

__all__ = [
    "read_safetensors",
    "write_safetensors",
    "NATIVE_DTYPES",
    "CARRIER_DTYPES",
    "DTYPES_METADATA",
    "OBJECT_GRAPH_METADATA",
]

FORMAT = "safetensors"

#: Rule I-ST-2: TF dtypes safetensors names itself.
NATIVE_DTYPES: dict[DataType, str] = {
    DataType.DT_BOOL: "BOOL",
    DataType.DT_UINT8: "U8",
    DataType.DT_INT8: "I8",
    DataType.DT_FLOAT8_E5M2: "F8_E5M2",
    DataType.DT_FLOAT8_E4M3FN: "F8_E4M3",
    DataType.DT_FLOAT8_E4M3FNUZ: "F8_E4M3FNUZ",
    DataType.DT_FLOAT8_E5M2FNUZ: "F8_E5M2FNUZ",
    DataType.DT_INT16: "I16",
    DataType.DT_UINT16: "U16",
    DataType.DT_HALF: "F16",
    DataType.DT_BFLOAT16: "BF16",
    DataType.DT_INT32: "I32",
    DataType.DT_UINT32: "U32",
    DataType.DT_FLOAT: "F32",
    DataType.DT_COMPLEX64: "C64",
    DataType.DT_DOUBLE: "F64",
    DataType.DT_INT64: "I64",
    DataType.DT_UINT64: "U64",
}
_TF_OF = {name: info(dt) for dt, name in NATIVE_DTYPES.items()}

#: Rule I-ST-3: the others, carried as the same bytes under another dtype.
#: Sub-byte and exotic types are carried as raw bytes (``U8``), never as a
#: signed type whose values would mislead; ``complex128`` as ``F64`` pairs.
CARRIER_DTYPES: dict[DataType, str] = {
    DataType.DT_QINT8: "I8",
    DataType.DT_QUINT8: "U8",
    DataType.DT_QINT16: "I16",
    DataType.DT_QUINT16: "U16",
    DataType.DT_QINT32: "I32",
    DataType.DT_INT4: "U8",
    DataType.DT_UINT4: "U8",
    DataType.DT_INT2: "U8",
    DataType.DT_UINT2: "U8",
    DataType.DT_FLOAT4_E2M1FN: "U8",
    DataType.DT_FLOAT8_E4M3B11FNUZ: "U8",
    DataType.DT_COMPLEX128: "F64",
}
#: ``__metadata__`` keys dtckpt writes and reads (rules I-ST-3, I-ST-4).
DTYPES_METADATA = "dtckpt.dtypes"
OBJECT_GRAPH_METADATA = "dtckpt.object_graph"


@dataclass(frozen=True)
class _Planned:
    tensor: TensorStream
    dtype: str
    shape: tuple[int, ...]


def _target(tensor: TensorStream) -> tuple[str, tuple[int, ...]]:
    """The safetensors dtype and shape that store ``tensor``."""
    enum = tensor.dtype.enum
    if enum in NATIVE_DTYPES:
        return NATIVE_DTYPES[enum], tensor.shape
    if enum == DataType.DT_COMPLEX128:
        return "F64", tensor.shape + (2,)
    if enum in CARRIER_DTYPES:
        return CARRIER_DTYPES[enum], tensor.shape
    if tensor.dtype.is_string:
        raise InvalidArgumentError(
            "safetensors cannot hold string tensors (only the object graph is kept, in "
            "__metadata__); pass skip_unsupported=True (dtckpt convert --skip-unsupported) "
            "to leave them out"
        )
    raise UnimplementedError(f"{tensor.dtype.name} tensors cannot be written to safetensors")


def _check(tensor: TensorStream) -> None:
    """What a safetensors file cannot hold (rules I-CV-2, I-ST-4)."""
    try:
        tensor.key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError("a safetensors key must be valid UTF-8") from None
    if tensor.key == METADATA_KEY:
        raise InvalidArgumentError(f"{METADATA_KEY!r} is reserved by safetensors")
    if _is_object_graph(tensor):
        return
    _target(tensor)


def _is_object_graph(tensor: TensorStream) -> bool:
    return tensor.key == OBJECT_GRAPH_KEY and tensor.dtype.is_string and tensor.shape == ()


# -- writing ------------------------------------------------------------------
def write_safetensors(
    source: TensorSource | str,
    path: str,
    *,
    skip_unsupported: bool = False,
    progress: Progress | None = None,
) -> ConvertReport:
    """Write every tensor of ``source`` to the safetensors file ``path``.

    Everything is checked before the first byte is written; the file appears
    at ``path`` only once complete.
    """
    if isinstance(source, str):
        from .convert import read_tensors

        with read_tensors(source) as opened:
            return write_safetensors(
                opened, path, skip_unsupported=skip_unsupported, progress=progress
            )
    chosen, skipped = select_tensors(source, _check, skip_unsupported=skip_unsupported)
    metadata: dict[str, str] = {}
    planned: list[_Planned] = []
    carried: dict[str, str] = {}
    total = 0
    for tensor in chosen:
        if _is_object_graph(tensor):
            graph = bytes(tensor.read().reshape(-1)[0])
            metadata[OBJECT_GRAPH_METADATA] = base64.b64encode(graph).decode("ascii")
            total += len(graph)
            continue
        dtype, shape = _target(tensor)
        if tensor.dtype.enum not in NATIVE_DTYPES:
            carried[tensor.key] = tensor.dtype.name
        planned.append(_Planned(tensor, dtype, shape))
    if carried:
        metadata[DTYPES_METADATA] = json.dumps(carried, sort_keys=True)
    planned.sort(key=lambda p: (-DTYPE_SIZES[p.dtype], p.tensor.key))
    entries = []
    position = 0
    for p in planned:
        entries.append(
            SafetensorsEntry(p.tensor.key, p.dtype, p.shape, position, position + p.tensor.nbytes)
        )
        position += p.tensor.nbytes
    header = encode_safetensors_header(entries, metadata)
    sink = progress or NULL_PROGRESS
    sink.start(position, f"writing {path}", "B")
    with atomic_path(path) as temporary, open(temporary, "wb") as out:
        out.write(header)
        for p in planned:
            _write_tensor(out, p.tensor, sink)
            total += p.tensor.nbytes
    sink.finish()
    return ConvertReport(len(chosen), total, source.format, FORMAT, skipped)


def _write_tensor(out: Any, tensor: TensorStream, progress: Progress) -> None:
    written = 0
    for chunk in counted(tensor.chunks(), progress):
        raw = np.ascontiguousarray(chunk).reshape(-1).view(np.uint8)
        written += raw.size
        if written > tensor.nbytes:
            break
        out.write(raw.data)
    if written != tensor.nbytes:
        raise InvalidArgumentError(
            f"the source gave {written} bytes for a tensor of {tensor.nbytes} bytes",
            key=tensor.key,
        )


# -- reading ------------------------------------------------------------------
def read_safetensors(path: str) -> TensorSource:
    """Open a safetensors file written by dtckpt or by any other safetensors writer.

    The header is read and validated now (rule I-ST-5); tensor bytes are read
    in chunks when streamed. Tensors come in buffer order.
    """
    fd = open_any(path, what="a safetensors file")  # rules H-SP-1, S-SI-7
    try:
        source = _open(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return source


def _open(fd: int, path: str) -> TensorSource:
    size = os.fstat(fd).st_size
    first = np.zeros(min(LENGTH_SIZE, size), dtype=np.uint8)
    read_into(fd, first, 0, path=path)
    try:
        length = decode_header_length(first.tobytes(), size)
        body = np.empty(length, dtype=np.uint8)
        read_into(fd, body, LENGTH_SIZE, path=path)
        header = decode_safetensors_header(body.tobytes(), data_size=size - LENGTH_SIZE - length)
    except CheckpointError as exc:
        raise exc.located(path=path) from None
    carried = _carried(header.metadata, path)
    streams: list[TensorStream] = []
    unsupported: list[Unsupported] = []
    for entry in header.entries:
        try:
            row, shape = _tf_dtype(entry, carried.get(entry.key))
        except UnimplementedError as exc:  # valid, just not convertible: the writer decides
            unsupported.append(Unsupported(entry.key, exc.located(path=path, key=entry.key)))
            continue
        except CheckpointError as exc:
            raise exc.located(path=path, key=entry.key) from None
        reader = _EntryReader(
            fd, path, entry.key, header.data_start + entry.begin, entry.end - entry.begin, row
        )
        streams.append(TensorStream(entry.key, row, shape, entry.end - entry.begin, reader.chunks))
    graph = _object_graph(header.metadata, path)
    if graph is not None:
        if any(s.key == OBJECT_GRAPH_KEY for s in streams):
            raise DataLossError(
                "the object graph is both a tensor and metadata", path=path, key=OBJECT_GRAPH_KEY
            )
        streams.append(_graph_stream(graph))
    return TensorSource(FORMAT, path, streams, unsupported, [lambda: os.close(fd)])


def _carried(metadata: dict[str, str], path: str) -> dict[str, str]:
    text = metadata.get(DTYPES_METADATA)
    if text is None:
        return {}
    try:
        carried = json.loads(text)
    except (ValueError, RecursionError):
        carried = None
    if not isinstance(carried, dict) or not all(isinstance(v, str) for v in carried.values()):
        raise DataLossError(
            f"__metadata__ {DTYPES_METADATA!r} is not a map of dtype names",
            path=path,
            key=METADATA_KEY,
        )
    return carried


def _tf_dtype(entry: SafetensorsEntry, recorded: str | None) -> tuple[DTypeInfo, tuple[int, ...]]:
    """The TF dtype and shape of an entry: its own, or the one recorded (rule I-ST-3)."""
    if len(entry.shape) > MAX_RANK + (recorded == "complex128"):  # rule H-BD-7
        raise UnimplementedError(
            f"a tensor of {len(entry.shape)} dimensions cannot be read: NumPy arrays have at "
            f"most {MAX_RANK}"
        )
    if recorded is None:
        if entry.dtype not in _TF_OF:
            raise UnimplementedError(
                f"safetensors dtype {entry.dtype} has no TensorFlow counterpart"
            )
        return _TF_OF[entry.dtype], entry.shape
    try:
        row = info(recorded)
    except CheckpointError:
        raise DataLossError(f"__metadata__ names an unknown dtype {recorded!r}") from None
    if row.enum == DataType.DT_COMPLEX128:
        if entry.dtype != "F64" or entry.shape[-1:] != (2,):
            raise DataLossError("complex128 is carried as F64 with a last dimension of 2")
        return row, entry.shape[:-1]
    if CARRIER_DTYPES.get(row.enum) != entry.dtype:
        raise DataLossError(f"{row.name} is not carried as {entry.dtype}")
    return row, entry.shape


def _object_graph(metadata: dict[str, str], path: str) -> bytes | None:
    text = metadata.get(OBJECT_GRAPH_METADATA)
    if text is None:
        return None
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise DataLossError(
            f"__metadata__ {OBJECT_GRAPH_METADATA!r} is not base64", path=path, key=METADATA_KEY
        ) from None


def _graph_stream(graph: bytes) -> TensorStream:
    def chunks() -> Iterator[np.ndarray]:
        value = np.empty(1, dtype=object)
        value[0] = graph
        yield value

    return TensorStream(OBJECT_GRAPH_KEY, info("string"), (), len(graph), chunks)


class _EntryReader:
    """Positioned reads of one tensor's bytes, a chunk at a time."""

    def __init__(
        self, fd: int, path: str, key: str, offset: int, size: int, row: DTypeInfo
    ) -> None:
        self.fd, self.path, self.key = fd, path, key
        self.offset, self.size, self.row = offset, size, row

    def chunks(self) -> Iterator[np.ndarray]:
        step = _tensors.chunk_elements(self.row.itemsize) * self.row.itemsize
        for done in range(0, self.size, step):
            raw = np.empty(min(step, self.size - done), dtype=np.uint8)
            try:
                read_into(self.fd, raw, self.offset + done, path=self.path)
            except CheckpointError as exc:  # the file shrank since its header was checked
                raise exc.located(key=self.key) from None
            yield raw.view(self.row.numpy)

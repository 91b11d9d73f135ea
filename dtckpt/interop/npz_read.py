"""Reading ``.npz`` archives for conversion (rule I-NZ-4; the layout is in :mod:`.npz_io`).

::

    read_npz(PATH)
      open the zip; read "__dtckpt__.json" if present (the recorded dtypes and string lengths)
      for each member "KEY.npy":  read and check its .npy header now  ->  TensorStream(KEY)
      when streamed:              header skipped, data read chunk by chunk through zipfile,
                                  which compares the member's CRC-32 at its end

Members NumPy could only load by unpickling, or whose dtype has no TensorFlow
counterpart, are listed as unsupported rather than refused outright, so a
writer can skip them when asked (rule I-CV-3).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from ..dtypes import DataType, DTypeInfo, from_numpy, info
from ..errors import (
    CheckpointError,
    DataLossError,
    InvalidArgumentError,
    UnimplementedError,
)
from ..format.index import MAX_RANK, element_count
from ..storage.staging import open_any
from . import tensors as _tensors
from .npy_codec import PREAMBLE_SIZE, NpyHeader, decode_npy_header, decode_npy_preamble
from .npz_io import (
    FORMAT,
    MAX_METADATA_BYTES,
    METADATA_FORMAT,
    METADATA_MEMBER,
    METADATA_VERSION,
    SUFFIX,
    ZIP_ERRORS,
)
from .tensors import TensorSource, TensorStream, Unsupported, row_boxes

__all__ = ["read_npz"]


def read_npz(path: str) -> TensorSource:
    """Open an archive written by dtckpt, ``numpy.savez`` or ``numpy.savez_compressed``.

    Each ``.npy`` member becomes a tensor named without its suffix; its
    header is read and checked now, its data only when streamed (rule I-NZ-4).
    """
    file = os.fdopen(open_any(path, what="an .npz file"), "rb")  # rules H-SP-1, S-SI-7
    try:
        archive = zipfile.ZipFile(file)
    except NotImplementedError as exc:  # a zip feature zipfile lacks ("zip file version")
        file.close()
        raise UnimplementedError(f"cannot read this zip archive: {exc}", path=path) from None
    except ZIP_ERRORS as exc:
        file.close()
        raise DataLossError(f"not a readable zip archive: {exc}", path=path) from None
    except BaseException:
        file.close()
        raise
    try:
        metadata = _read_metadata(archive, path)
        streams, unsupported = _members(archive, path, metadata)
    except BaseException:
        archive.close()
        file.close()
        raise
    return TensorSource(FORMAT, path, streams, unsupported, [file.close, archive.close])


class _Metadata:
    def __init__(self, dtypes: dict[str, str], lengths: dict[str, list[int]]) -> None:
        self.dtypes = dtypes
        self.lengths = lengths


def _read_metadata(archive: zipfile.ZipFile, path: str) -> _Metadata:
    try:
        member = archive.getinfo(METADATA_MEMBER)
    except KeyError:
        return _Metadata({}, {})
    where: dict[str, Any] = {"path": path, "key": METADATA_MEMBER}
    if member.file_size > MAX_METADATA_BYTES:
        raise DataLossError(f"metadata member claims {member.file_size} bytes", **where)
    with _MemberFile(archive, member, path, METADATA_MEMBER) as f:
        data = _read_exact(f, member.file_size, path, METADATA_MEMBER)
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DataLossError(f"metadata is not JSON: {exc}", **where) from None
    if not isinstance(document, dict) or document.get("format") != METADATA_FORMAT:
        raise DataLossError(f"metadata is not a {METADATA_FORMAT} record", **where)
    if document.get("version") != METADATA_VERSION:
        raise UnimplementedError(f"metadata version {document.get('version')!r}", **where)
    dtypes, lengths = document.get("dtypes", {}), document.get("string_lengths", {})
    if not isinstance(dtypes, dict) or not all(isinstance(v, str) for v in dtypes.values()):
        raise DataLossError("metadata 'dtypes' must map keys to dtype names", **where)
    if not isinstance(lengths, dict) or not all(
        isinstance(v, list) and all(isinstance(n, int) and n >= 0 for n in v)
        for v in lengths.values()
    ):
        raise DataLossError("metadata 'string_lengths' must map keys to lists of sizes", **where)
    return _Metadata(dtypes, lengths)


def _members(
    archive: zipfile.ZipFile, path: str, metadata: _Metadata
) -> tuple[list[TensorStream], list[Unsupported]]:
    streams: list[TensorStream] = []
    unsupported: list[Unsupported] = []
    seen: set[str] = set()
    for member in archive.infolist():
        name = member.filename
        if name == METADATA_MEMBER:
            continue
        if name in seen:
            raise DataLossError("the archive holds this member twice", path=path, key=name)
        seen.add(name)
        if not name.endswith(SUFFIX):
            error = InvalidArgumentError("member is not a .npy array", path=path, key=name)
            unsupported.append(Unsupported(name, error))
            continue
        key = name[: -len(SUFFIX)]
        try:
            streams.append(_member_stream(archive, member, path, key, metadata))
        except (UnimplementedError, InvalidArgumentError) as exc:
            unsupported.append(Unsupported(key, exc.located(path=path, key=key)))
    return streams, unsupported


def _member_stream(
    archive: zipfile.ZipFile,
    member: zipfile.ZipInfo,
    path: str,
    key: str,
    metadata: _Metadata,
) -> TensorStream:
    with _MemberFile(archive, member, path, key) as f:
        start = _read_exact(f, min(PREAMBLE_SIZE, member.file_size), path, key)
        try:
            _, header_size = decode_npy_preamble(start)
            rest = _read_exact(f, header_size - len(start), path, key)
            header = decode_npy_header(start + rest)
        except CheckpointError as exc:
            raise exc.located(path=path, key=key) from None
    try:
        stored = np.dtype(header.descr)
    except (TypeError, ValueError):
        raise DataLossError(
            f".npy descr {header.descr!r} is not a dtype", path=path, key=key
        ) from None
    row = _tf_dtype(stored, metadata.dtypes.get(key), path, key)
    if len(header.shape) > MAX_RANK:  # rule H-BD-7
        raise UnimplementedError(
            f"a tensor of {len(header.shape)} dimensions cannot be read: NumPy arrays have at "
            f"most {MAX_RANK}",
            path=path,
            key=key,
        )
    numel = element_count(header.shape)  # stops above int64 (rule H-BD-4)
    described = "more than 2**63" if numel is None else header.header_size + numel * stored.itemsize
    if numel is None or member.file_size != header.header_size + numel * stored.itemsize:
        raise DataLossError(
            f"member holds {member.file_size} bytes; its header describes {described}",
            path=path,
            key=key,
        )
    if row.is_string:
        lengths = metadata.lengths.get(key)
        return TensorStream(
            key,
            row,
            header.shape,
            numel * stored.itemsize,
            lambda: iter([_strings(archive, member, path, key, header, stored, lengths)]),
        )
    reader = _MemberReader(archive, member, path, key, header, stored, row)
    return TensorStream(key, row, header.shape, numel * row.itemsize, reader.chunks)


def _tf_dtype(stored: np.dtype[Any], recorded: str | None, path: str, key: str) -> DTypeInfo:
    """The TF dtype of a member: recorded in the metadata, or NumPy's own (rule I-NZ-4)."""
    where: dict[str, Any] = {"path": path, "key": key}
    if recorded is not None:
        try:
            row = info(recorded)
        except CheckpointError:
            raise DataLossError(f"metadata names an unknown dtype {recorded!r}", **where) from None
        fits = (
            stored.kind == "S"
            if row.is_string
            else (stored.kind in "biufcV" and stored.itemsize == row.itemsize)
        )
        if not fits or row.enum == DataType.DT_VARIANT:
            raise DataLossError(f"a .npy dtype {stored.str} cannot hold {row.name}", **where)
        return row
    if stored.kind in "SU":
        return info("string")
    if stored.kind == "O":
        raise UnimplementedError("object arrays need unpickling, which dtckpt never does", **where)
    if stored.kind not in "biufc" or stored.hasobject:
        raise UnimplementedError(f".npy dtype {stored.str} has no TensorFlow counterpart", **where)
    try:
        return from_numpy(stored)
    except InvalidArgumentError:
        raise UnimplementedError(
            f".npy dtype {stored.str} has no TensorFlow counterpart", **where
        ) from None


class _MemberReader:
    """Streams the data of one fixed-width member in C order."""

    def __init__(
        self,
        archive: zipfile.ZipFile,
        member: zipfile.ZipInfo,
        path: str,
        key: str,
        header: NpyHeader,
        stored: np.dtype[Any],
        row: DTypeInfo,
    ) -> None:
        self.archive, self.member, self.path, self.key = archive, member, path, key
        self.header, self.stored, self.row = header, stored, row
        self.swap = stored.byteorder == ">" or (stored.byteorder == "=" and not np.little_endian)

    def chunks(self) -> Iterator[np.ndarray]:
        shape = tuple(self.header.shape)
        if self.header.fortran_order and sum(d > 1 for d in shape) > 1 and 0 not in shape:
            yield from self._fortran_chunks(shape)
            return
        with _MemberFile(self.archive, self.member, self.path, self.key) as f:
            _read_exact(f, self.header.header_size, self.path, self.key)
            total = self.member.file_size - self.header.header_size
            step = _tensors.chunk_elements(self.stored.itemsize) * self.stored.itemsize
            for done in range(0, total, step):
                raw = _read_exact(f, min(step, total - done), self.path, self.key)
                yield self._elements(np.frombuffer(raw, dtype=np.uint8))
            _expect_end(f, self.path, self.key)

    def _elements(self, raw: np.ndarray) -> np.ndarray:
        width = self.stored.itemsize
        if self.swap and width > 1:
            unit = width // 2 if self.stored.kind == "c" else width
            raw = raw.view(f"u{unit}").byteswap().view(np.uint8)
        return raw.view(self.row.numpy)

    def _fortran_chunks(self, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
        """A Fortran-order member: spilled to a temporary file, read back in C order."""
        with tempfile.TemporaryFile() as spill:
            with _MemberFile(self.archive, self.member, self.path, self.key) as f:
                _read_exact(f, self.header.header_size, self.path, self.key)
                total = self.member.file_size - self.header.header_size
                for done in range(0, total, _tensors.CHUNK_BYTES):
                    spill.write(
                        _read_exact(f, min(_tensors.CHUNK_BYTES, total - done), self.path, self.key)
                    )
                _expect_end(f, self.path, self.key)
            spill.flush()
            mapped = np.memmap(spill, dtype=np.uint8, mode="r", shape=(total,))
            grid = mapped.view(self.stored).reshape(shape[::-1]).T
            for box in row_boxes(shape, self.stored.itemsize):
                part = grid[tuple(slice(s, s + n) for s, n in box)]
                raw = np.ascontiguousarray(part).reshape(-1).view(np.uint8)
                yield self._elements(raw.copy())
            del grid, mapped


def _strings(
    archive: zipfile.ZipFile,
    member: zipfile.ZipInfo,
    path: str,
    key: str,
    header: NpyHeader,
    stored: np.dtype[Any],
    lengths: list[int] | None,
) -> np.ndarray:
    """A string member as a flat object array of ``bytes`` (rule I-NZ-3)."""
    with _MemberFile(archive, member, path, key) as f:
        _read_exact(f, header.header_size, path, key)
        data = _read_exact(f, member.file_size - header.header_size, path, key)
        _expect_end(f, path, key)
    shape = tuple(header.shape)
    grid = np.frombuffer(data, dtype=stored).reshape(shape[::-1] if header.fortran_order else shape)
    if header.fortran_order:
        grid = grid.T
    flat = np.ascontiguousarray(grid).reshape(-1)
    out = np.empty(flat.size, dtype=object)
    if stored.kind == "U":
        out[:] = [str(item).encode("utf-8") for item in flat]
        return out
    if lengths is None:
        out[:] = [bytes(item) for item in flat]
        return out
    if len(lengths) != flat.size or any(n > stored.itemsize for n in lengths):
        raise DataLossError("metadata string_lengths do not fit the member", path=path, key=key)
    raw = flat.view(np.uint8).reshape(flat.size, stored.itemsize) if flat.size else None
    out[:] = [bytes(raw[i, :n]) for i, n in enumerate(lengths)] if raw is not None else []
    return out


# -- zip access ---------------------------------------------------------------
class _MemberFile:
    """``archive.open(member)`` with zipfile's errors turned into dtckpt's."""

    def __init__(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: str, key: str):
        self.archive, self.member, self.path, self.key = archive, member, path, key
        self.file: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        try:
            self.file = self.archive.open(self.member)
        except (NotImplementedError, RuntimeError) as exc:  # compression method, encryption
            raise UnimplementedError(
                f"cannot open member: {exc}", path=self.path, key=self.key
            ) from None
        except ZIP_ERRORS as exc:
            raise DataLossError(
                f"cannot open member: {exc}", path=self.path, key=self.key
            ) from None
        return self.file

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


def _read_exact(f: IO[bytes], size: int, path: str, key: str) -> bytes:
    pieces = []
    left = size
    try:
        while left > 0:
            piece = f.read(min(left, _tensors.CHUNK_BYTES))
            if not piece:
                raise DataLossError(
                    f"member ends {left} bytes early (truncated archive?)", path=path, key=key
                )
            pieces.append(piece)
            left -= len(piece)
    except CheckpointError:
        raise
    except ZIP_ERRORS as exc:  # bad CRC-32, broken deflate stream, short file
        raise DataLossError(f"cannot read member: {exc}", path=path, key=key) from None
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _expect_end(f: IO[bytes], path: str, key: str) -> None:
    """Reading past the last byte makes zipfile compare the member's CRC-32."""
    try:
        extra = f.read(1)
    except ZIP_ERRORS as exc:
        raise DataLossError(f"cannot read member: {exc}", path=path, key=key) from None
    if extra:
        raise DataLossError("member holds more bytes than its header describes", path=path, key=key)

"""NumPy ``.npz`` archives: their layout, and writing them (rules I-NZ-1 to I-NZ-3).

::

    model.npz (a zip archive; members stored, or deflated with compress=True)
      "model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE.npy"   .npy header + C-order bytes
      "step.npy"
      ...
      "__dtckpt__.json"      only when needed: the TF dtype of members whose .npy dtype
                             cannot say it (bfloat16 kept as <u2 ...) and the exact lengths
                             of string elements that end in NUL bytes

``numpy.load`` strips the ``.npy`` suffix, so it lists each tensor under its
TF key, slashes included. Members are written and read one chunk at a time:
zipfile streams them (and checks each member's CRC-32 at its end), and a
Fortran-order member is spilled to a temporary file and read back in C order.
Object arrays are refused: loading them would mean unpickling. Reading is in
:mod:`.npz_read`.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Iterator

import numpy as np

from ..dtypes import DataType, DTypeInfo, from_numpy
from ..errors import InvalidArgumentError, UnimplementedError
from ..progress import NULL_PROGRESS, Progress
from .npy_codec import encode_npy_header
from .tensors import (
    ConvertReport,
    TensorSource,
    TensorStream,
    atomic_path,
    counted,
    select_tensors,
    value_bytes,
)

__all__ = ["write_npz", "npy_descr", "METADATA_MEMBER", "ZIP64_THRESHOLD"]

FORMAT = "npz"
SUFFIX = ".npy"
#: Rule I-NZ-2: the member that records what .npy headers cannot say.
METADATA_MEMBER = "__dtckpt__.json"
METADATA_FORMAT = "dtckpt.npz"
METADATA_VERSION = 1
#: The most bytes of metadata read back: it is parsed whole.
MAX_METADATA_BYTES = 64 << 20
#: Rule I-NZ-1: members at least this large get ZIP64 extra fields up front
#: (zipfile cannot add them once a member's local header is written).
ZIP64_THRESHOLD = 1 << 31
#: Rule I-NZ-1: fixed timestamps (as ``numpy.savez``) make the archive reproducible.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
#: What zipfile raises for a damaged archive or member.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)


def npy_descr(row: DTypeInfo) -> tuple[str, bool]:
    """The .npy ``descr`` that stores ``row``, and whether the TF dtype must be recorded.

    NumPy's own dtypes are stored as themselves; the quantized types share
    them and are recorded. The ``ml_dtypes`` types (bfloat16, float8, int4...)
    have no .npy spelling NumPy can read back: their bytes are stored as the
    unsigned integer of the same width, and recorded (rule I-NZ-2).
    """
    if row.is_string:
        raise InvalidArgumentError("strings are stored as |S<width>, not by npy_descr")
    try:
        plain = np.dtype(row.numpy.str)
    except TypeError:  # ml_dtypes spell float8 as "<f1", which NumPy cannot parse
        plain = None
    if plain is not None and plain == row.numpy:
        descr = plain.newbyteorder("<").str if plain.itemsize > 1 else plain.str
        return descr, from_numpy(plain).enum != row.enum
    return (f"<u{row.itemsize}" if row.itemsize > 1 else "|u1"), True


# -- writing ------------------------------------------------------------------
def write_npz(
    source: TensorSource | str,
    path: str,
    *,
    compress: bool = False,
    skip_unsupported: bool = False,
    progress: Progress | None = None,
) -> ConvertReport:
    """Write every tensor of ``source`` as a member ``KEY.npy`` of the archive ``path``.

    ``compress=True`` deflates the members (``numpy.savez_compressed``);
    stored members can be memory-mapped by other readers. The archive
    appears at ``path`` only once complete.
    """
    if isinstance(source, str):
        from .convert import read_tensors

        with read_tensors(source) as opened:
            return write_npz(
                opened,
                path,
                compress=compress,
                skip_unsupported=skip_unsupported,
                progress=progress,
            )
    chosen, skipped = select_tensors(source, _check, skip_unsupported=skip_unsupported)
    sink = progress or NULL_PROGRESS
    sink.start(sum(t.nbytes for t in chosen), f"writing {path}", "B")
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    recorded: dict[str, str] = {}
    lengths: dict[str, list[int]] = {}
    total = 0
    with atomic_path(path) as temporary:
        with zipfile.ZipFile(temporary, "w", compression=method, allowZip64=True) as archive:
            for tensor in chosen:
                total += _write_member(archive, tensor, method, recorded, lengths, sink)
            if recorded or lengths:
                _write_metadata(archive, recorded, lengths, method)
    sink.finish()
    return ConvertReport(len(chosen), total, source.format, FORMAT, skipped)


def _check(tensor: TensorStream) -> None:
    """Keys and dtypes an archive cannot hold (rule I-CV-2)."""
    try:
        name = (tensor.key + SUFFIX).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError("an npz member name must be valid UTF-8") from None
    if "\x00" in tensor.key:
        raise InvalidArgumentError("an npz member name cannot hold a NUL character")
    if len(name) > 0xFFFF:
        raise InvalidArgumentError("the key is too long for a zip member name")
    if tensor.dtype.enum == DataType.DT_VARIANT:
        raise UnimplementedError("variant tensors cannot be written")


def _member_info(name: str, method: int, size: int) -> zipfile.ZipInfo:
    member = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    member.compress_type = method
    member.external_attr = 0o600 << 16
    member.file_size = size
    return member


def _write_member(
    archive: zipfile.ZipFile,
    tensor: TensorStream,
    method: int,
    recorded: dict[str, str],
    lengths: dict[str, list[int]],
    progress: Progress,
) -> int:
    if tensor.dtype.is_string:
        value = tensor.read()
        fixed, exact = _fixed_width_strings(value)
        if exact is not None:
            lengths[tensor.key] = exact
        header = encode_npy_header(fixed.dtype.str, tuple(value.shape))
        pieces: Iterator[np.ndarray] = iter([fixed.reshape(-1)])
        expected = fixed.nbytes
        size = value_bytes(tensor, value)
        progress.advance(size)
    else:
        descr, record = npy_descr(tensor.dtype)
        if record:
            recorded[tensor.key] = tensor.dtype.name
        header = encode_npy_header(descr, tensor.shape)
        pieces = counted(tensor.chunks(), progress)
        expected = size = tensor.nbytes
    member = _member_info(tensor.key + SUFFIX, method, len(header) + expected)
    written = 0
    with archive.open(member, "w", force_zip64=member.file_size >= ZIP64_THRESHOLD) as out:
        out.write(header)
        for piece in pieces:
            raw = np.ascontiguousarray(piece).reshape(-1).view(np.uint8)
            written += raw.size
            if written > expected:
                break
            out.write(raw.data)
    if written != expected:
        raise InvalidArgumentError(
            f"the source gave {written} bytes for a tensor of {expected} bytes", key=tensor.key
        )
    return size


def _fixed_width_strings(value: np.ndarray) -> tuple[np.ndarray, list[int] | None]:
    """Strings as a ``|S<width>`` array, and their exact lengths where NumPy would lose them.

    ``|S`` arrays pad with NUL bytes and NumPy strips trailing NULs on
    access, so elements that end in NUL need their lengths recorded (rule I-NZ-3).
    """
    items = [bytes(item) for item in value.reshape(-1)]
    width = max((len(item) for item in items), default=0)
    fixed = np.array(items, dtype=f"S{max(width, 1)}").reshape(value.shape)
    exact = [len(item) for item in items] if any(i.endswith(b"\x00") for i in items) else None
    return fixed, exact


def _write_metadata(
    archive: zipfile.ZipFile,
    recorded: dict[str, str],
    lengths: dict[str, list[int]],
    method: int,
) -> None:
    document = {
        "format": METADATA_FORMAT,
        "version": METADATA_VERSION,
        "dtypes": dict(sorted(recorded.items())),
        "string_lengths": dict(sorted(lengths.items())),
    }
    data = json.dumps(document, ensure_ascii=False, sort_keys=False).encode("utf-8")
    archive.writestr(_member_info(METADATA_MEMBER, method, len(data)), data)

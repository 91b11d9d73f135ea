"""TensorFlow checkpoints as a conversion source and target (rules I-TF-1 to I-TF-3).

::

    read_checkpoint(PREFIX or DIR)
      plain entry      [offset, offset+size) of its data shard, read in chunks;
                       the CRC-32C runs along and is checked before the last chunk is handed out
      partitioned key  assembled by boxes of whole rows from its slices, each slice's
                       CRC-32C checked                        (both in bundle_chunks.py)
      string tensor    read whole

    write_checkpoint(source, PREFIX)
      one BundleWriter, one data shard: add_chunks() per fixed-width tensor, add() per string

Only the keys ``tf.train.load_checkpoint`` lists are converted: a partitioned
tensor leaves as one whole tensor, its slice keys do not appear.
"""

from __future__ import annotations

import os

from ..checkpoint.reader import load_checkpoint
from ..dtypes import DataType, DTypeInfo, info
from ..errors import InvalidArgumentError, UnimplementedError
from ..format.bundle_reader import BundleReader
from ..format.bundle_writer import BundleWriter
from ..format.messages import BundleEntry
from ..format.naming import key_bytes, key_str
from ..format.ordered_code import encode_tensor_name_slice
from ..progress import NULL_PROGRESS, Progress
from ..storage.dirlock import directory_lock
from ..storage.durable import remove_stale_temporaries
from ..storage.urls import is_url
from .bundle_chunks import entry_chunks, partitioned_chunks
from .tensors import (
    ConvertReport,
    TensorSource,
    TensorStream,
    Unsupported,
    counted,
    select_tensors,
    value_bytes,
)

__all__ = ["read_checkpoint", "write_checkpoint"]

FORMAT = "checkpoint"


# -- reading ------------------------------------------------------------------
def read_checkpoint(path: str) -> TensorSource:
    """Open a checkpoint (a prefix, or a directory with a ``checkpoint`` file) for streaming.

    Tensors are listed in key order. Variant tensors, which dtckpt does not
    decode, are listed as unsupported (rule I-TF-1).
    """
    reader = load_checkpoint(path)
    bundle = reader.bundle
    streams: list[TensorStream] = []
    unsupported: list[Unsupported] = []
    try:
        for kb in bundle.keys():
            entry = bundle.entry(kb)
            row = info(entry.dtype)
            key = key_str(kb)
            if row.is_variable_width and not row.is_string:
                error = UnimplementedError(
                    f"{row.name} tensors cannot be converted", path=bundle.index_path, key=kb
                )
                unsupported.append(Unsupported(key, error))
                continue
            streams.append(_stream(bundle, kb, entry, row))
    except BaseException:
        reader.close()
        raise
    return TensorSource(FORMAT, reader.prefix, streams, unsupported, [reader.close])


def _stream(bundle: BundleReader, kb: bytes, entry: BundleEntry, row: DTypeInfo) -> TensorStream:
    shape = tuple(entry.shape)
    key = key_str(kb)
    numel = 1
    for d in shape:
        numel *= d
    if row.is_string:
        return TensorStream(
            key,
            row,
            shape,
            _string_size(bundle, kb, entry),
            lambda: iter([bundle.read(kb).reshape(-1)]),
        )
    if entry.slices:
        return TensorStream(
            key, row, shape, numel * row.itemsize, lambda: partitioned_chunks(bundle, kb, entry)
        )
    return TensorStream(
        key, row, shape, numel * row.itemsize, lambda: entry_chunks(bundle, kb, entry, row)
    )


def _string_size(bundle: BundleReader, kb: bytes, entry: BundleEntry) -> int:
    """The stored size of a string tensor: only an estimate of its values, for progress."""
    if not entry.slices:
        return entry.size
    return sum(bundle.entry(encode_tensor_name_slice(kb, s)).size for s in entry.slices)


# -- writing ------------------------------------------------------------------
def write_checkpoint(
    source: TensorSource | str,
    prefix: str,
    *,
    skip_unsupported: bool = False,
    progress: Progress | None = None,
) -> ConvertReport:
    """Write every tensor of ``source`` (or of the file it names) as a checkpoint at ``prefix``.

    The checkpoint has one data shard and no ``checkpoint`` state file; the
    bundle files appear only once complete (rule I-TF-3).
    """
    if isinstance(source, str):
        from .convert import read_tensors

        with read_tensors(source) as opened:
            return write_checkpoint(
                opened, prefix, skip_unsupported=skip_unsupported, progress=progress
            )
    prefix = os.fspath(prefix)
    if prefix.endswith(("/", os.sep)) or (not is_url(prefix) and os.path.isdir(prefix)):
        raise InvalidArgumentError(
            "a checkpoint is written at a prefix such as DIR/ckpt, not at a directory",
            path=prefix,
        )
    chosen, skipped = select_tensors(source, _check_key, skip_unsupported=skip_unsupported)
    sink = progress or NULL_PROGRESS
    sink.start(sum(t.nbytes for t in chosen), f"writing {prefix}", "B")
    total = 0
    directory = os.path.dirname(prefix) or os.curdir
    if not is_url(prefix) and os.path.isdir(
        directory
    ):  # rule S-TP-5: what a killed conversion left goes first
        with directory_lock(directory):
            remove_stale_temporaries(directory)
    with BundleWriter(prefix) as writer:
        for tensor in chosen:
            total += _write_one(writer, tensor, sink)
    sink.finish()
    return ConvertReport(len(chosen), total, source.format, FORMAT, skipped)


def _write_one(writer: BundleWriter, tensor: TensorStream, progress: Progress) -> int:
    kb = key_bytes(tensor.key)
    if tensor.dtype.is_string:
        value = tensor.read()
        writer.add(kb, value, "string")
        size = value_bytes(tensor, value)
        progress.advance(size)
        return size
    writer.add_chunks(kb, tensor.dtype.enum, tensor.shape, counted(tensor.chunks(), progress))
    return tensor.nbytes


def _check_key(tensor: TensorStream) -> None:
    """Keys a bundle cannot hold as plain tensors (rule I-CV-2)."""
    if tensor.key == "":
        raise InvalidArgumentError("the empty key is reserved for the bundle header")
    if tensor.key.startswith("\x00"):
        raise InvalidArgumentError("keys starting with a NUL byte are the bundle's slice keys")
    if tensor.dtype.enum == DataType.DT_VARIANT:
        raise UnimplementedError("variant tensors cannot be written")

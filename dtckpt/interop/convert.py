"""``convert(src, dst)``: a checkpoint, an ``.npz`` or a ``.safetensors`` file into another.

::

    SRC --read_tensors--> TensorSource --write_tensors--> DST
         by SRC's name        (streams of chunks)            by DST's name
         *.npz          -> read_npz                          write_npz
         *.safetensors  -> read_safetensors                  write_safetensors
         anything else  -> read_checkpoint (prefix or dir)   write_checkpoint (prefix)

The format is chosen from the path alone (rule I-CV-1), so ``dtckpt convert
ckpt model.safetensors`` and back need no flags.
"""

from __future__ import annotations

import os

from ..errors import InvalidArgumentError
from ..progress import Progress
from ..storage.urls import is_url
from .checkpoint_io import read_checkpoint, write_checkpoint
from .npz_io import write_npz
from .npz_read import read_npz
from .safetensors_io import read_safetensors, write_safetensors
from .tensors import ConvertReport, TensorSource

__all__ = ["FORMATS", "format_of", "read_tensors", "write_tensors", "convert"]

#: Rule I-CV-1: the format names a :class:`ConvertReport` uses.
FORMATS = ("checkpoint", "npz", "safetensors")


def format_of(path: str) -> str:
    """``"npz"``, ``"safetensors"`` or ``"checkpoint"``, from the file name's ending."""
    name = os.fspath(path).lower()
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".safetensors"):
        return "safetensors"
    return "checkpoint"


def read_tensors(path: str) -> TensorSource:
    """Open ``path`` for streaming in the format its name says."""
    kind = format_of(path)
    if kind == "npz":
        return read_npz(path)
    if kind == "safetensors":
        return read_safetensors(path)
    return read_checkpoint(path)


def write_tensors(
    source: TensorSource,
    path: str,
    *,
    skip_unsupported: bool = False,
    progress: Progress | None = None,
    to: str | None = None,
) -> ConvertReport:
    """Write ``source`` to ``path`` in format ``to``, by default the one its name says."""
    kind = format_of(path) if to is None else _checked_format(to)
    if kind == "npz":
        return write_npz(source, path, skip_unsupported=skip_unsupported, progress=progress)
    if kind == "safetensors":
        return write_safetensors(source, path, skip_unsupported=skip_unsupported, progress=progress)
    return write_checkpoint(source, path, skip_unsupported=skip_unsupported, progress=progress)


def _same_path(a: str, b: str) -> bool:
    if is_url(a) or is_url(b):
        return os.fspath(a).rstrip("/") == os.fspath(b).rstrip("/")
    return os.path.abspath(a) == os.path.abspath(b)


def convert(
    src: str,
    dst: str,
    *,
    skip_unsupported: bool = False,
    progress: Progress | None = None,
    to: str | None = None,
) -> ConvertReport:
    """Convert the checkpoint or file ``src`` into ``dst``, streaming (rules I-CV-1 to I-CV-5).

    ``src`` may be a checkpoint prefix, a directory with a ``checkpoint``
    file, an ``.npz`` or a ``.safetensors`` file; ``dst`` a prefix, an
    ``.npz`` or a ``.safetensors`` path. Keys are kept exactly. A tensor the
    target cannot hold raises a typed error naming its key before anything
    is written, unless ``skip_unsupported`` is given: then it is left out and
    listed in the report's ``skipped``. ``to`` (one of ``FORMATS``) names the target's
    format whatever ``dst`` is called.
    """
    target = format_of(dst) if to is None else _checked_format(to)
    with read_tensors(src) as source:
        if source.format == "checkpoint" and target == "checkpoint":
            if _same_path(source.path, dst):
                raise InvalidArgumentError(
                    "source and destination are the same checkpoint", path=os.fspath(dst)
                )
        return write_tensors(
            source, dst, skip_unsupported=skip_unsupported, progress=progress, to=target
        )


def _checked_format(name: str) -> str:
    if name not in FORMATS:
        raise InvalidArgumentError(f"unknown format {name!r}: one of {', '.join(FORMATS)}")
    return name

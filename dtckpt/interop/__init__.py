"""Converting checkpoints to and from ``.npz`` and ``.safetensors``, streaming.

::

    from dtckpt.interop import convert
    convert("train/ckpt-3", "model.safetensors")     # TF checkpoint -> safetensors
    convert("model.safetensors", "back/ckpt")        # and back: TensorFlow reads it
    convert("train", "model.npz")                    # a directory: its latest checkpoint

The layers, bottom up: :mod:`.npy_codec` and :mod:`.safetensors_codec` turn
headers into bytes and back; :mod:`.tensors` defines the streams of chunks
every reader hands out and every writer consumes; :mod:`.checkpoint_io`,
:mod:`.npz_io` and :mod:`.safetensors_io` read and write files;
:mod:`.convert` picks them by file name. The rules are in ``spec/interop.md``.
"""

from __future__ import annotations

from .checkpoint_io import read_checkpoint, write_checkpoint
from .convert import FORMATS, convert, format_of, read_tensors, write_tensors
from .npz_io import write_npz
from .npz_read import read_npz
from .safetensors_io import read_safetensors, write_safetensors
from .tensors import ConvertReport, TensorSource, TensorStream

__all__ = [
    "FORMATS",
    "ConvertReport",
    "TensorSource",
    "TensorStream",
    "convert",
    "format_of",
    "read_checkpoint",
    "read_npz",
    "read_safetensors",
    "read_tensors",
    "write_checkpoint",
    "write_npz",
    "write_safetensors",
    "write_tensors",
]

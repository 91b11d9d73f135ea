"""Builders shared by the archive tests: small checkpoints, and archives forged from parts."""

from __future__ import annotations

import os
import pathlib

import ml_dtypes
import numpy as np

import dtckpt
from dtckpt.archive import layout
from dtckpt.format.crc import crc32c


def save_model(directory: pathlib.Path, name: str = "ckpt", seed: int = 0) -> str:
    """A bundle of float32, bfloat16, int64 and string tensors, one of them 1 MiB."""
    rng = np.random.default_rng(seed)
    prefix = str(directory / name)
    tensors = {
        "dense/kernel": rng.standard_normal((512, 512)).astype(np.float32),
        "dense/bias": rng.standard_normal(512).astype(np.float32),
        "embed": rng.standard_normal((64, 96)).astype(np.float32).astype(ml_dtypes.bfloat16),
        "step": np.int64(42),
        "vocab": np.array([b"alpha", b"beta", b"\xff"], dtype=object),
    }
    dtckpt.save_v2(prefix, list(tensors), [""] * len(tensors), list(tensors.values()))
    return prefix


def files_under(root: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every file below ``root`` by its '/'-separated relative name, with its bytes."""
    out = {}
    for directory, _, names in os.walk(root):
        for name in names:
            full = os.path.join(directory, name)
            out[os.path.relpath(full, root).replace(os.sep, "/")] = pathlib.Path(full).read_bytes()
    return out


def assemble(frames: list[bytes], toc: bytes) -> bytes:
    """An archive from raw frame bytes and table bytes, with a correct header and footer."""
    body = layout.encode_header() + b"".join(frames)
    footer = layout.encode_footer(layout.Footer(len(body), len(toc), crc32c(toc)))
    return body + toc + footer


def frame_rows(rows: list[tuple[int, ...]]) -> np.ndarray:
    return np.array(rows, dtype=layout.FRAME_DTYPE)

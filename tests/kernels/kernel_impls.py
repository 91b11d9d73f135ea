"""Helpers shared by the kernel tests: which implementations to run and small builders."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

NUMBA_DISABLED = os.environ.get("DTCKPT_DISABLE_NUMBA", "") not in ("", "0")
IMPL_NAMES = ["reference", "jit"]


def load_impl(name: str) -> ModuleType:
    """Import ``dtckpt.kernels.<name>``; the Numba twin is skipped under DTCKPT_DISABLE_NUMBA."""
    if name == "jit" and NUMBA_DISABLED:
        pytest.skip("DTCKPT_DISABLE_NUMBA is set, so the Numba twins are not run")
    return importlib.import_module(f"dtckpt.kernels.{name}")


def encode_varint(value: int) -> bytes:
    """Plain LEB128 for any non-negative Python int, so tests can build out-of-range varints."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def shuffle_oracle(data: bytes, itemsize: int) -> bytes:
    """The byte shuffle one byte at a time: plane ``j`` holds byte ``j`` of every item."""
    n = len(data) // itemsize
    return bytes(data[i * itemsize + j] for j in range(itemsize) for i in range(n))

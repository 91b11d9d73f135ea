"""Fixtures for the conversion tests: small chunks, and comparing checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

import dtckpt
from dtckpt.interop import tensors
from tests.conftest import assert_same_array


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Chunks of 24 bytes, so that even tiny tensors stream in several pieces."""
    monkeypatch.setattr(tensors, "CHUNK_BYTES", 24)
    return 24


def assert_same_checkpoints(a: str, b: str, skipped: tuple[str, ...] = ()) -> None:
    """Both checkpoints list the same keys (less ``skipped``) with equal dtype, shape and bytes."""
    with dtckpt.load_checkpoint(a) as left, dtckpt.load_checkpoint(b) as right:
        keys = sorted(set(left.get_variable_to_shape_map()) - set(skipped))
        assert sorted(right.get_variable_to_shape_map()) == keys
        for key in keys:
            assert_same_array(right.get_tensor(key), left.get_tensor(key), key)


def object_array(items: list[bytes], shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out.reshape(shape)

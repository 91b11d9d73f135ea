"""Shared fixtures: the TF-written golden checkpoints under ``spec/golden``."""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import dtckpt.dtypes as dt

from .s3server import s3_bucket, s3_server  # noqa: F401 - fixtures of every test directory

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "spec" / "golden"


@dataclass
class Golden:
    name: str
    directory: pathlib.Path
    manifest: dict[str, Any]

    @property
    def prefix(self) -> str:
        return str(self.directory / self.manifest["prefix"])

    def value(self, value_id: str) -> np.ndarray:
        return decode_value(self.manifest["values"][value_id])

    def expected(self) -> dict[str, np.ndarray]:
        return {k: self.value(v) for k, v in self.manifest["expected"].items()}


def decode_value(spec: dict[str, Any]) -> np.ndarray:
    """A manifest value (hex bytes + dtype + shape) as a NumPy array."""
    shape = tuple(spec["shape"])
    if spec["dtype"] == "string":
        items = [bytes.fromhex(h) for h in spec["strings_hex"]]
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out.reshape(shape)
    dtype = dt.info(spec["dtype"]).numpy
    return np.frombuffer(bytes.fromhex(spec["hex"]), dtype=dtype).reshape(shape).copy()


def golden_names() -> list[str]:
    return sorted(p.parent.name for p in GOLDEN.glob("*/manifest.json"))


def load_golden(name: str) -> Golden:
    directory = GOLDEN / name
    return Golden(name, directory, json.loads((directory / "manifest.json").read_text()))


def assert_same_array(actual: np.ndarray, expected: np.ndarray, what: str = "") -> None:
    """Equal dtype, shape and bytes (NaN payloads included); strings compared as bytes."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if expected.dtype == object:
        assert list(actual.reshape(-1)) == list(expected.reshape(-1)), what
    else:
        assert np.ascontiguousarray(actual).tobytes() == expected.tobytes(), what


@pytest.fixture(params=golden_names())
def golden(request: pytest.FixtureRequest) -> Golden:
    return load_golden(request.param)

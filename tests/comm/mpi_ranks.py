"""Rank programs of ``tests/comm/test_mpi.py``."""

from __future__ import annotations

import pathlib
import sys

import pytest


def conformance() -> None:
    """Every rank runs the conformance tests; the exit code is pytest's."""
    here = pathlib.Path(__file__).with_name("mpi_conformance.py")
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(here)]))

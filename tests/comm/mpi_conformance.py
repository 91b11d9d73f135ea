"""MPI passes the communicator conformance tests; run on every rank by ``test_mpi.py``.

Not collected on its own (its name does not start with ``test_``): each test would
otherwise run on a single process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dtckpt.comm import Communicator
from dtckpt.comm.mpi import MPICommunicator
from tests.comm.conformance import GroupConformance


class TestMPI(GroupConformance):
    @pytest.fixture
    def comm(self) -> Iterator[Communicator]:
        communicator = MPICommunicator()
        yield communicator
        communicator.close()

"""A lone process passes the communicator conformance tests (rule P-CM-1)."""

from __future__ import annotations

import pytest

from dtckpt.comm import Communicator, SingleProcess
from tests.comm.conformance import CommunicatorConformance


class TestSingleProcess(CommunicatorConformance):
    @pytest.fixture
    def comm(self) -> Communicator:
        return SingleProcess()

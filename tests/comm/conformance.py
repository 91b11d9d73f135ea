"""What every communicator must do (rule P-CM-1), as a test class each implementation subclasses.

A subclass provides the ``comm`` fixture; every member of the group runs the same tests
in the same order, as an SPMD program would. ``tests/comm/test_single.py`` runs them on
one process; ``tests/comm/test_mpi.py`` runs them on several MPI processes (each rank
running pytest on ``tests/comm/mpi_conformance.py``). Tests about late members need two
or more: they are in :class:`GroupConformance`, which groups of two or more pass.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dtckpt.comm import Communicator, run_on_root, scatter_from_root
from dtckpt.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    ResourceExhaustedError,
    UnknownError,
)

LONG = 60.0  # a deadline no healthy collective comes near


class CommunicatorConformance:
    @pytest.fixture
    def comm(self) -> Communicator:
        raise NotImplementedError

    def test_identity(self, comm: Communicator) -> None:
        assert comm.size >= 1 and 0 <= comm.rank < comm.size
        assert repr(comm).endswith(f"rank {comm.rank} of {comm.size}>")

    def test_gather_in_rank_order(self, comm: Communicator) -> None:
        for root in {0, comm.size - 1}:
            got = comm.gather({"rank": comm.rank}, root=root, timeout=LONG)
            if comm.rank == root:
                assert got == [{"rank": r} for r in range(comm.size)]
            else:
                assert got is None

    def test_bcast_from_every_root(self, comm: Communicator) -> None:
        for root in range(comm.size):
            value = ("from", root, b"\x00\xff") if comm.rank == root else None
            assert comm.bcast(value, root=root, timeout=LONG) == ("from", root, b"\x00\xff")

    def test_scatter(self, comm: Communicator) -> None:
        values = [f"for {r}" for r in range(comm.size)] if comm.rank == 0 else None
        assert comm.scatter(values, timeout=LONG) == f"for {comm.rank}"

    def test_scatter_needs_a_value_per_member(self, comm: Communicator) -> None:
        if comm.rank == 0:  # refused before anything is sent: the others are not involved
            with pytest.raises(InvalidArgumentError, match=f"needs {comm.size} values"):
                comm.scatter([1] * (comm.size + 1), timeout=LONG)
        assert comm.bcast("still in step", timeout=LONG) == "still in step"

    def test_large_values(self, comm: Communicator) -> None:
        big = np.arange(2_000_000, dtype=np.float32) if comm.rank == 0 else None
        got = comm.bcast(big, timeout=LONG)
        assert got.dtype == np.float32 and np.array_equal(got, np.arange(2_000_000))
        parts = comm.gather(np.full(300_000, comm.rank, np.int64), timeout=LONG)
        if comm.rank == 0:
            assert parts is not None
            assert [int(p[0]) for p in parts] == list(range(comm.size))

    def test_barrier_and_counts(self, comm: Communicator) -> None:
        before = comm.stats.count
        comm.barrier(timeout=LONG)
        comm.bcast(None, timeout=LONG)
        assert comm.stats.count == before + 2 and comm.stats.seconds >= 0

    def test_timeouts_must_be_positive(self, comm: Communicator) -> None:
        for bad in (0, -1, float("nan")):
            with pytest.raises(InvalidArgumentError, match="must be positive"):
                comm.bcast(1, timeout=bad)
        with pytest.raises(InvalidArgumentError, match="root 99"):
            comm.bcast(1, root=99, timeout=LONG)

    def test_dup_keeps_its_messages_apart(self, comm: Communicator) -> None:
        twin = comm.dup()
        try:
            results: dict[str, object] = {}

            def other_thread() -> None:
                for i in range(20):
                    value = ("twin", i) if twin.rank == 0 else None
                    results[f"twin {i}"] = twin.bcast(value, timeout=LONG)

            thread = threading.Thread(target=other_thread)
            thread.start()
            for i in range(20):
                value = ("main", i) if comm.rank == 0 else None
                assert comm.bcast(value, timeout=LONG) == ("main", i)
            thread.join()
            assert results == {f"twin {i}": ("twin", i) for i in range(20)}
        finally:
            twin.close()

    def test_background_is_made_once(self, comm: Communicator) -> None:
        first = comm.background()
        assert comm.background() is first and first is not comm
        assert first.size == comm.size and first.rank == comm.rank
        assert first.bcast("bg" if comm.rank == 0 else None, timeout=LONG) == "bg"

    def test_a_root_failure_reaches_everyone(self, comm: Communicator) -> None:
        def compute() -> int:
            raise OSError(28, "No space left on device", "/data/ckpt.index")

        with pytest.raises(ResourceExhaustedError) as caught:
            run_on_root(comm, compute, timeout=LONG, what="test")
        expected_client = 0 if comm.size > 1 else None
        assert caught.value.client == expected_client and caught.value.errno == 28
        assert caught.value.path == "/data/ckpt.index"
        assert run_on_root(comm, lambda: "fine", timeout=LONG, what="test") == "fine"

    def test_scatter_from_root(self, comm: Communicator) -> None:
        got = scatter_from_root(
            comm, lambda: [r * r for r in range(comm.size)], timeout=LONG, what="test"
        )
        assert got == comm.rank * comm.rank

        def broken() -> list[int]:
            raise KeyError("nope")

        with pytest.raises(UnknownError, match="KeyError: 'nope'"):
            scatter_from_root(comm, broken, timeout=LONG, what="test")


class GroupConformance(CommunicatorConformance):
    """What a communicator of two or more members must do besides: a late member is named
    to the others and the group carries on (rule P-CM-1). A lone process has no peer to
    be late, so its test class is :class:`CommunicatorConformance` alone."""

    def test_a_late_member_is_named_and_the_group_carries_on(self, comm: Communicator) -> None:
        comm.barrier(timeout=LONG)  # everyone has been here once: only the gather waits below
        late = comm.size - 1
        if comm.rank == late:
            time.sleep(1.5)
            comm.gather("late", timeout=LONG)  # nobody takes it any more
        elif comm.rank == 0:
            with pytest.raises(DeadlineExceededError) as caught:
                comm.gather("on time", timeout=0.5, what="test gather")
            assert caught.value.client == late
            assert f"test gather: no word from client {late} within 0.5 s" in str(caught.value)
        else:
            comm.gather("on time", timeout=LONG)
        # The late message of the failed gather is never taken for this one's.
        got = comm.gather(("second", comm.rank), timeout=LONG)
        if comm.rank == 0:
            assert got == [("second", r) for r in range(comm.size)]

    def test_a_late_root_is_named(self, comm: Communicator) -> None:
        comm.barrier(timeout=LONG)
        if comm.rank == 0:
            time.sleep(1.5)
            comm.bcast("stale", timeout=LONG)
        else:
            with pytest.raises(DeadlineExceededError) as caught:
                comm.bcast(None, timeout=0.5)
            assert caught.value.client == 0
        assert comm.bcast("fresh" if comm.rank == 0 else None, timeout=LONG) == "fresh"

    def test_a_late_first_collective_times_out_too(self, comm: Communicator) -> None:
        late = comm.size - 1
        if comm.rank == late:
            time.sleep(1.5)
            comm.gather("late", timeout=LONG)
        elif comm.rank == 0:
            with pytest.raises(DeadlineExceededError, match="within 0.5 s"):
                comm.gather("on time", timeout=0.5)
        else:
            try:  # may have sent before the deadline, or be waiting for the late member
                comm.gather("on time", timeout=0.5)
            except DeadlineExceededError:
                pass
        got = comm.gather(("next", comm.rank), timeout=LONG)
        if comm.rank == 0:
            assert got == [("next", r) for r in range(comm.size)]

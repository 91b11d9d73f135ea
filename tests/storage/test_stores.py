"""Every store passes :class:`StoreTests`: the file system, fsspec's memory, S3 (moto)."""

from __future__ import annotations

import itertools
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtckpt.storage.base import Span, Store, coalesce
from dtckpt.storage.local import LocalStore
from dtckpt.storage.urls import resolve

from .store_tests import StoreTests

_COUNT = itertools.count()


class TestLocalStore(StoreTests):
    @pytest.fixture
    def store_root(self, tmp_path: pathlib.Path) -> tuple[Store, str]:
        return LocalStore(), str(tmp_path / "root")


class TestMemoryStore(StoreTests):
    @pytest.fixture
    def store_root(self) -> tuple[Store, str]:
        return resolve(f"memory://dtckpt-store-tests/{next(_COUNT)}")


class TestS3Store(StoreTests):
    @pytest.fixture
    def store_root(self, s3_bucket: str) -> tuple[Store, str]:
        store, key = resolve(f"{s3_bucket}/root")
        assert store.atomic_conditions
        return store, key


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 40)), max_size=30))
def test_coalesce_reads_exactly_the_bytes_asked_for(pairs: list[tuple[int, int]]) -> None:
    spans = [Span(o, n) for o, n in pairs]
    runs = coalesce(spans, max_length=64)
    wanted = {b for s in spans for b in range(s.offset, s.offset + s.length)}
    covered = [b for run, _ in runs for b in range(run.offset, run.offset + run.length)]
    assert set(covered) == wanted  # no byte that was not asked for
    assert len(covered) <= sum(s.length for s in spans)  # never more than reading each span
    for run, members in runs:
        for s in members:
            assert run.offset <= s.offset and s.offset + s.length <= run.offset + run.length
    served = sorted(s for _, members in runs for s in members)
    assert served == sorted(s for s in spans if s.length > 0)
    assert all(run.length <= 64 or len(members) == 1 for run, members in runs)

"""Data objects of a store read ahead (rule S-SI-8): the bytes of every read are the bytes
asked for, whatever was expected, in whatever order the reads come."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dtckpt.format import streams
from dtckpt.format.streams import StoreShard
from dtckpt.storage.base import Span, coalesce


class _Object:
    """An in-memory object with the ranged reads of a store's reader, counting requests."""

    key = "object"

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.requests = 0

    def read(self, offset: int, length: int) -> bytes:
        self.requests += 1
        return self.data[offset : offset + length]

    def read_into(self, out: memoryview, offset: int) -> None:
        self.requests += 1
        out[:] = self.data[offset : offset + len(out)]

    def read_ranges(self, spans: Sequence[Span]) -> list[bytes]:
        runs = coalesce(spans, max_length=1 << 30)
        self.requests += len(runs)
        return [self.data[s.offset : s.offset + s.length] for s in spans]

    def close(self) -> None:
        pass


def _shard(data: bytes, expected: Sequence[Span]) -> tuple[StoreShard, _Object]:
    obj = _Object(data)
    shard = StoreShard("memory://object", obj)  # type: ignore[arg-type]
    for span in expected:
        shard.expect(span.offset, span.length)
    return shard, obj


def _read_all(shard: StoreShard, data: bytes, reads: Sequence[Span]) -> None:
    for span in reads:
        out = np.empty(span.length, np.uint8)
        shard.read_into(out, span.offset)
        assert out.tobytes() == data[span.offset : span.offset + span.length]


@st.composite
def _plans(draw: st.DrawFn) -> tuple[bytes, list[Span], list[Span]]:
    """An object, the spans expected of it, and the reads that come (mostly the expected
    ones in order, some skipped, repeated or never expected)."""
    size = draw(st.integers(1, 400))
    data = draw(st.binary(min_size=size, max_size=size))
    span = st.builds(
        lambda a, b: Span(min(a, b), abs(a - b)), st.integers(0, size), st.integers(0, size)
    )
    expected = draw(st.lists(span, max_size=30))
    reads: list[Span] = []
    for wanted in expected:
        choice = draw(st.sampled_from(["read", "read", "read", "skip", "twice", "other"]))
        if choice in ("read", "twice"):
            reads.append(wanted)
        if choice == "twice":
            reads.append(wanted)
        if choice == "other":
            reads.append(draw(span))
    return data, expected, [r for r in reads if r.length > 0]


@given(_plans(), st.sampled_from([1, 16, 64, 1 << 20]))
def test_reads_ahead_return_the_bytes_asked_for(
    plan: tuple[bytes, list[Span], list[Span]], window: int
) -> None:
    data, expected, reads = plan
    saved = streams.READ_AHEAD
    streams.READ_AHEAD = window
    try:
        shard, _ = _shard(data, expected)
        _read_all(shard, data, reads)
    finally:
        streams.READ_AHEAD = saved


def test_expected_adjacent_values_cost_one_request() -> None:
    data = bytes(range(256)) * 4
    spans = [Span(offset, 16) for offset in range(0, len(data), 16)]
    shard, obj = _shard(data, spans)
    _read_all(shard, data, spans)
    assert obj.requests == 1

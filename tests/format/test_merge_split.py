"""Merging entries that arrive encoded gives the index merging the records gives (P-SV-2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtckpt.errors import AlreadyExistsError, InvalidArgumentError
from dtckpt.format.merge import encode_index, merge_entries, merge_split, split_for_merge
from dtckpt.format.messages import BundleEntry
from dtckpt.format.ordered_code import encode_tensor_name_slice


def _part(
    number: int, tensors: list[str], width: int, plain: list[str]
) -> dict[bytes, BundleEntry]:
    entries: dict[bytes, BundleEntry] = {}
    for t, name in enumerate(tensors):
        key = name.encode()
        cut = ((0, -1), (number * width, width))
        entries[key] = BundleEntry(dtype=1, shape=(4, 64 * width), shard_id=number, slices=(cut,))
        entries[encode_tensor_name_slice(key, cut)] = BundleEntry(
            dtype=1, shape=(4, width), shard_id=number, offset=t * 16 * width, size=16 * width
        )
    for offset, name in enumerate(plain):
        entries[name.encode()] = BundleEntry(dtype=9, shape=(), shard_id=number, offset=offset)
    return entries


names = st.lists(st.text("abcxyz/_", min_size=1, max_size=6), unique=True, max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    tensors=names,
    count=st.integers(1, 5),
    width=st.integers(1, 3),
    plain=st.lists(names, min_size=5, max_size=5),
)
def test_split_merge_is_the_merge(
    tensors: list[str], count: int, width: int, plain: list[list[str]]
) -> None:
    taken = set(tensors)
    parts = []
    for number in range(count):
        own = [p for p in plain[number] if p not in taken]
        taken.update(own)
        parts.append(_part(number, tensors, width, own))
    expected = encode_index(merge_entries(parts), count)
    assert merge_split([split_for_merge(p) for p in parts], count) == expected


def test_split_merge_refuses_what_the_merge_refuses() -> None:
    a = _part(0, ["w"], 2, ["step"])
    b = _part(1, ["w"], 2, ["step"])
    for merge in (
        lambda: merge_entries([a, b]),
        lambda: merge_split([split_for_merge(a), split_for_merge(b)], 2),
    ):
        with pytest.raises(AlreadyExistsError, match="duplicate tensor key"):
            merge()
    c = _part(1, ["w"], 2, [])
    c[b"w"] = c[b"w"]._replace(dtype=2)
    with pytest.raises(InvalidArgumentError, match="different dtype or shape"):
        merge_split([split_for_merge(a), split_for_merge(c)], 2)

"""The conformance tests every :class:`~dtckpt.storage.base.Store` passes (rules S-SI-*).

A store's test class derives from :class:`StoreTests` and defines the
``store_root`` fixture: the store, and an empty directory key in it.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dtckpt.errors import (
    ConditionalWriteConflict,
    DataLossError,
    NotFoundError,
    OutOfRangeError,
)
from dtckpt.storage import fsspec_store
from dtckpt.storage.base import Span, Store


def _payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


class StoreTests:
    @pytest.fixture
    def store_root(self) -> tuple[Store, str]:
        raise NotImplementedError

    # -- S-SI-1: writes become visible whole, at commit ----------------------------------
    def test_write_commit_read(self, store_root: tuple[Store, str]) -> None:
        store, root = store_root
        key = store.join(root, "a.bin")
        data = _payload(1000)
        writer = store.open_writer(key)
        writer.write(data[:10])
        writer.write(memoryview(data)[10:])
        assert not store.exists(key)
        assert "a.bin" not in store.list(root)
        writer.commit()
        assert store.exists(key)
        assert store.read(key) == data
        assert "a.bin" in store.list(root)

    def test_abort_keeps_the_old_object(self, store_root: tuple[Store, str]) -> None:
        store, root = store_root
        key = store.join(root, "a.bin")
        store.create_if_absent(key, b"old")
        writer = store.open_writer(key)
        writer.write(b"new bytes")
        writer.abort()
        writer.abort()
        assert store.read(key) == b"old"
        assert store.list(root) == ["a.bin"]

    def test_writer_copies_what_it_is_given(self, store_root: tuple[Store, str]) -> None:
        store, root = store_root
        key = store.join(root, "a.bin")
        buffer = bytearray(b"x" * 100)
        writer = store.open_writer(key)
        writer.write(buffer)
        buffer[:] = b"y" * 100
        writer.write(buffer)
        writer.commit()
        assert store.read(key) == b"x" * 100 + b"y" * 100

    def test_multipart_object(
        self, store_root: tuple[Store, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(fsspec_store, "PART_SIZE", 5 << 20)  # S3's smallest part
        store, root = store_root
        key = store.join(root, "big.bin")
        data = _payload((11 << 20) + 123, seed=1)
        writer = store.open_writer(key)
        for start in range(0, len(data), 3 << 20):
            writer.write(data[start : start + (3 << 20)])
        writer.commit()
        assert store.read(key) == data
        reader = store.open_reader(key)
        assert reader.size == len(data)
        out = bytearray(7 << 20)
        reader.read_into(memoryview(out), 2 << 20)
        assert bytes(out) == data[2 << 20 : 9 << 20]
        reader.close()

    def test_replacing_commit(self, store_root: tuple[Store, str]) -> None:
        store, root = store_root
        key = store.join(root, "a.bin")
        for data in (b"first", b"second, longer", b""):
            writer = store.open_writer(key)
            writer.write(data)
            writer.commit()
            assert store.read(key) == data

    # -- S-SI-2: typed errors -------------------------------------------------------------
    def test_missing_object(self, store_root: tuple[Store, str]) -> None:
        store, root = store_root
        key = store.join(root, "nothing")
        assert not store.exists(key)
        with pytest.raises(NotFoundError):
            store.open_reader(key)
        with pytest.raises(NotFoundError):
            store.read(key)
        assert store.read_versioned(key) == (None, None)
        store.delete(key)  # absent: nothing happens
        assert store.list(store.join(root, "no-directory")) == []

    def test_read_limit(self, store_root: tuple[Store, str]) -> None:
        store, root = store_root
        key = store.join(root, "a.bin")
        store.create_if_absent(key, b"12345")
        assert store.read(key, limit=5) == b"12345"
        with pytest.raises(DataLossError):
            store.read(key, limit=4)

    # -- S-SI-3: ranged reads ----------------------------------------------------------------
    def test_ranged_reads(self, store_root: tuple[Store, str]) -> None:
        store, root = store_root
        key = store.join(root, "a.bin")
        data = _payload(4096, seed=2)
        store.create_if_absent(key, data)
        reader = store.open_reader(key)
        assert reader.size == 4096
        assert bytes(reader.read(100, 50)) == data[100:150]
        assert bytes(reader.read(4096, 0)) == b""
        spans = [Span(10, 5), Span(15, 10), Span(0, 3), Span(2000, 96), Span(15, 10), Span(9, 0)]
        got = reader.read_ranges(spans)
        assert [bytes(g) for g in got] == [data[s.offset : s.offset + s.length] for s in spans]
        with pytest.raises(OutOfRangeError):
            reader.read(4000, 97)
        with pytest.raises(OutOfRangeError):
            reader.read_ranges([Span(0, 1), Span(4096, 1)])
        reader.close()

    # -- S-SI-4: conditional writes -------------------------------------------------------------
    def test_create_if_absent(self, store_root: tuple[Store, str]) -> None:
        store, root = store_root
        key = store.join(root, "index")
        store.create_if_absent(key, b"one")
        with pytest.raises(ConditionalWriteConflict):
            store.create_if_absent(key, b"two")
        assert store.read(key) == b"one"
        assert store.list(root) == ["index"]  # the loser left nothing behind

    def test_replace_if_unchanged(self, store_root: tuple[Store, str]) -> None:
        store, root = store_root
        key = store.join(root, "checkpoint")
        assert store.read_versioned(key) == (None, None)
        token = store.replace_if_unchanged(key, b"v1", None)
        with pytest.raises(ConditionalWriteConflict):
            store.replace_if_unchanged(key, b"lost", None)
        data, read_token = store.read_versioned(key)
        assert data == b"v1"
        token2 = store.replace_if_unchanged(key, b"v2", read_token)
        assert token2 != token or store.read(key) == b"v2"
        with pytest.raises(ConditionalWriteConflict):
            store.replace_if_unchanged(key, b"stale", read_token)
        assert store.read(key) == b"v2"
        assert store.read_versioned(key)[1] == token2
        store.delete(key)
        with pytest.raises(ConditionalWriteConflict):  # it vanished since it was read
            store.replace_if_unchanged(key, b"v3", token2)
        assert not store.exists(key)

    def test_no_update_is_lost(self, store_root: tuple[Store, str]) -> None:
        store, root = store_root
        key = store.join(root, "counter")
        store.replace_if_unchanged(key, b"0", None)
        errors: list[BaseException] = []

        def bump(times: int) -> None:
            try:
                for _ in range(times):
                    while True:
                        data, token = store.read_versioned(key)
                        assert data is not None
                        try:
                            store.replace_if_unchanged(key, b"%d" % (int(data) + 1), token)
                            break
                        except ConditionalWriteConflict:
                            continue
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=bump, args=(10,)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert store.read(key) == b"30"

    # -- listing and deleting ---------------------------------------------------------------------
    def test_list_and_delete(self, store_root: tuple[Store, str]) -> None:
        store, root = store_root
        for name in ("b", "a", "c.index"):
            store.create_if_absent(store.join(root, name), name.encode())
        store.create_if_absent(store.join(store.join(root, "sub"), "x"), b"x")
        assert sorted(store.list(root)) == ["a", "b", "c.index"]
        assert store.list_directories(root) == ["sub"]
        assert store.list_directories(store.join(root, "sub")) == []
        store.delete(store.join(root, "b"))
        assert sorted(store.list(root)) == ["a", "c.index"]
        assert store.parent(store.join(root, "a")).rstrip("/") == root.rstrip("/")
        assert store.url(store.join(root, "a")).endswith("a")

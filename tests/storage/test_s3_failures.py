"""Failures in the middle of an S3 save: the server stopped mid-upload (rule S-OS-7).

The moto server really stops (its socket closes) while a multipart upload is under
way; s3fs and botocore retry a bounded number of times and the save raises a typed
error. After a restart the previous checkpoint and the state file are intact, and the
next save removes what the interrupted one left (rule S-OS-5).
"""

from __future__ import annotations

import time
from typing import Any

import fsspec
import numpy as np
import pytest
import s3fs

import dtckpt
from dtckpt.errors import CheckpointError, UnavailableError
from dtckpt.storage import fsspec_store
from dtckpt.storage.objects import CLAIMS
from dtckpt.storage.urls import resolve

from ..s3server import S3Server, assert_two_checkpoints, object_names


def test_server_stopped_mid_upload(
    s3_bucket: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsspec_store, "PART_SIZE", 5 << 20)  # S3's smallest part
    # Fewer retries than the defaults (s3fs 5, botocore 5: about 30 s here), still bounded.
    monkeypatch.setattr(s3fs.S3FileSystem, "retries", 2)
    monkeypatch.setitem(
        fsspec.config.conf, "s3", {"config_kwargs": {"retries": {"max_attempts": 2}}}
    )
    value = np.random.default_rng(0).standard_normal((4 << 20) // 8 * 3).astype(np.float64)
    big = dtckpt.Variable(value)  # 12 MiB: three parts
    ckpt = dtckpt.Checkpoint(big=big)
    directory = f"{s3_bucket}/run"
    manager = dtckpt.CheckpointManager(ckpt, directory, max_to_keep=3)
    first = manager.save()
    store, state_key = resolve(f"{directory}/checkpoint")
    state_before = store.read(state_key)

    upload = fsspec_store._MultipartWriter._upload

    def failing(self: Any, number: int, body: bytes) -> dict[str, Any]:
        if number == 2:
            s3_server.stop()
        return upload(self, number, body)

    monkeypatch.setattr(fsspec_store._MultipartWriter, "_upload", failing)
    big.assign(value + 1)
    started = time.monotonic()
    try:
        with pytest.raises(UnavailableError) as info:
            manager.save()
    finally:
        elapsed = time.monotonic() - started
        s3_server.restart()
    assert isinstance(info.value, CheckpointError) and isinstance(info.value, OSError)
    assert elapsed < 120, f"retries took {elapsed:.0f} s"
    print(f"the failed save gave up after {elapsed:.1f} s")
    monkeypatch.setattr(fsspec_store._MultipartWriter, "_upload", upload)

    # The previous checkpoint and the state file are as they were.
    assert store.read(state_key) == state_before
    assert dtckpt.latest_checkpoint(directory) == first
    left = object_names(directory)
    assert "ckpt-2.index" not in left
    # The claim could not be deleted while the server was down: it stays, stale (S-OS-5).
    assert object_names(f"{directory}/{CLAIMS}") == ["ckpt-2"]
    big.assign(np.zeros_like(value))
    ckpt.restore(first).assert_consumed()
    assert np.array_equal(big.numpy(), value)

    # The next save (ckpt-2 again: the restore set save_counter back to 1) takes over the
    # stale claim and cleans what the interrupted one left.
    big.assign(value + 2)
    again = manager.save()
    assert again == f"{directory}/ckpt-2"
    assert_two_checkpoints(directory, f"left by the failed save: {left}")
    big.assign(np.zeros_like(value))
    ckpt.restore(again).assert_consumed()
    assert np.array_equal(big.numpy(), value + 2)
    assert object_names(f"{directory}/{CLAIMS}") == []


def test_a_write_that_fails_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    directory = f"memory://failing-writes/{time.monotonic_ns()}"
    value = np.arange(1 << 16, dtype=np.float32)
    v = dtckpt.Variable(value)
    ckpt = dtckpt.Checkpoint(v=v)
    first = ckpt.save(f"{directory}/ckpt")
    written = 0
    write = fsspec_store._FileWriter.write

    def failing(self: Any, data: Any) -> int:
        nonlocal written
        written += memoryview(data).nbytes
        if written > 100_000:
            raise UnavailableError("injected: the connection dropped", path=self.key)
        return write(self, data)

    monkeypatch.setattr(fsspec_store._FileWriter, "write", failing)
    v.assign(value + 1)
    with pytest.raises(UnavailableError, match="injected"):
        ckpt.save(f"{directory}/ckpt")
    monkeypatch.setattr(fsspec_store._FileWriter, "write", write)
    assert object_names(directory) == ["checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]
    assert dtckpt.latest_checkpoint(directory) == first
    ckpt.restore(first).assert_consumed()
    assert np.array_equal(v.numpy(), value)


def test_stale_claims_and_their_data_are_cleaned(s3_bucket: str) -> None:
    """A claim left by a dead save (its data objects written, no index) is removed with its
    data objects by the next save in the directory; a live claim and an indexed prefix's
    data are left alone (rule S-OS-5)."""
    from dtckpt.storage.objects import PrefixClaim, clean_stale_claims

    store, directory = resolve(f"{s3_bucket}/d")
    dead = PrefixClaim(store, store.join(directory, "p"), shards=2)
    dead.acquire()
    for i in range(2):
        store.create_if_absent(store.join(directory, f"p.data-0000{i}-of-00002"), b"x")
    dead.abandon()  # its process "died": the claim stays, held by nobody
    live = PrefixClaim(store, store.join(directory, "q"))
    live.acquire()
    store.create_if_absent(store.join(directory, "q.data-00000-of-00001"), b"y")
    removed = clean_stale_claims(store, directory)
    assert sorted(r.rpartition("/")[2] for r in removed) == [
        "p",
        "p.data-00000-of-00002",
        "p.data-00001-of-00002",
    ]
    assert object_names(f"{s3_bucket}/d") == ["q.data-00000-of-00001"]
    assert object_names(f"{s3_bucket}/d/{CLAIMS}") == ["q"]
    live.release()

"""Checkpoints on S3: every API over ``s3://`` against a moto server on 127.0.0.1 (S-OS-*).

The server is real (HTTP on the loopback address, started by ``tests/s3server.py``), so
s3fs's requests, multipart uploads and conditional headers are the ones S3 would get.
"""

from __future__ import annotations

import pathlib
import threading

import numpy as np
import pytest

import dtckpt
from dtckpt import dtensor as dd
from dtckpt.errors import ConditionalWriteConflict, NotFoundError
from dtckpt.format.bundle_reader import BundleReader
from dtckpt.storage.objects import CLAIMS, PrefixClaim
from dtckpt.storage.urls import resolve

from ..conftest import assert_same_array, golden_names, load_golden
from ..s3server import object_names, s3_filesystem


def _model(seed: int = 0) -> tuple[dtckpt.Checkpoint, dtckpt.Variable, dtckpt.Variable]:
    rng = np.random.default_rng(seed)
    a = dtckpt.Variable(rng.standard_normal((64, 33)).astype(np.float32))
    b = dtckpt.Variable(np.array([b"x", b"yy", b""], dtype=object))
    return dtckpt.Checkpoint(a=a, b=b), a, b


def test_checkpoint_round_trip_is_byte_identical_to_a_local_save(
    s3_bucket: str, tmp_path: pathlib.Path
) -> None:
    ckpt, a, b = _model()
    remote = ckpt.write(f"{s3_bucket}/run/ckpt")
    local = ckpt.write(str(tmp_path / "ckpt"))
    assert remote == f"{s3_bucket}/run/ckpt"
    fs = s3_filesystem()
    for suffix in (".index", ".data-00000-of-00001"):
        assert fs.cat_file(f"{remote[5:]}{suffix}") == pathlib.Path(local + suffix).read_bytes()
    assert object_names(f"{s3_bucket}/run") == ["ckpt.data-00000-of-00001", "ckpt.index"]
    expected = a.numpy().copy()
    a.assign(np.zeros_like(expected))
    ckpt.read(remote).assert_consumed()
    assert np.array_equal(a.numpy(), expected)
    reader = dtckpt.load_checkpoint(remote)
    assert np.array_equal(reader.get_tensor("a/.ATTRIBUTES/VARIABLE_VALUE"), expected)
    assert list(reader.get_tensor("b/.ATTRIBUTES/VARIABLE_VALUE")) == [b"x", b"yy", b""]
    reader.close()
    assert ("a/.ATTRIBUTES/VARIABLE_VALUE", [64, 33]) in dtckpt.list_variables(remote)


def test_save_restore_latest_and_directories(s3_bucket: str) -> None:
    ckpt, a, _ = _model(1)
    original = a.numpy().copy()
    first = ckpt.save(f"{s3_bucket}/run/ckpt")
    a.assign_add(np.ones((64, 33), np.float32))
    second = ckpt.save(f"{s3_bucket}/run/ckpt")
    assert (first, second) == (f"{s3_bucket}/run/ckpt-1", f"{s3_bucket}/run/ckpt-2")
    assert dtckpt.latest_checkpoint(f"{s3_bucket}/run") == second
    assert dtckpt.list_variables(f"{s3_bucket}/run") == dtckpt.list_variables(second)
    wanted = a.numpy().copy()
    a.assign(np.zeros((64, 33), np.float32))
    ckpt.restore(dtckpt.latest_checkpoint(f"{s3_bucket}/run")).assert_consumed()
    assert np.array_equal(a.numpy(), wanted)
    ckpt.restore(first)
    assert np.array_equal(a.numpy(), original)
    assert dtckpt.latest_checkpoint(f"{s3_bucket}/nothing") is None
    with pytest.raises(NotFoundError):
        dtckpt.load_checkpoint(f"{s3_bucket}/nothing")


def test_raw_ops(s3_bucket: str) -> None:
    prefix = f"{s3_bucket}/raw/p"
    x = np.arange(24, dtype=np.int64).reshape(4, 6)
    dtckpt.save_v2(prefix, ["x", "w"], ["", "4 6 0,2:-"], [x, x[:2]])
    got = dtckpt.restore_v2(prefix, ["x", "w"], ["", "4 6 0,2:1,3"], ["int64", "int64"])
    assert np.array_equal(got[0], x) and np.array_equal(got[1], x[:2, 1:4])


_GOLDENS = ("little_checkpoint", "multi_shard", "dtensor", "dtypes")


@pytest.mark.parametrize("name", [n for n in golden_names() if n in _GOLDENS])
def test_tf_written_goldens_read_from_s3(s3_bucket: str, name: str) -> None:
    golden = load_golden(name)
    fs = s3_filesystem()
    directory = f"{s3_bucket[5:]}/{name}"
    for path in golden.directory.iterdir():
        if path.is_file():
            fs.put_file(str(path), f"{directory}/{path.name}")
    prefix = f"{s3_bucket}/{name}/{golden.manifest['prefix']}"
    with dtckpt.load_checkpoint(prefix) as reader:
        for key, value in golden.expected().items():
            assert_same_array(reader.get_tensor(key), value, key)


def test_manager_keeps_and_deletes_in_s3(s3_bucket: str) -> None:
    ckpt, a, _ = _model(2)
    directory = f"{s3_bucket}/managed"
    manager = dtckpt.CheckpointManager(ckpt, directory, max_to_keep=2)
    for _ in range(4):
        manager.save()
    assert manager.checkpoints == [f"{directory}/ckpt-3", f"{directory}/ckpt-4"]
    assert object_names(directory) == [
        "checkpoint",
        "ckpt-3.data-00000-of-00001",
        "ckpt-3.index",
        "ckpt-4.data-00000-of-00001",
        "ckpt-4.index",
    ]
    again = dtckpt.CheckpointManager(ckpt, directory, max_to_keep=2)
    assert again.latest_checkpoint == f"{directory}/ckpt-4"
    assert again.checkpoints == manager.checkpoints
    a.assign(np.zeros((64, 33), np.float32))
    assert again.restore_or_initialize() == f"{directory}/ckpt-4"
    assert a.numpy().any()


def test_two_managers_never_lose_each_others_update(s3_bucket: str) -> None:
    directory = f"{s3_bucket}/shared"
    managers = []
    for name in ("left", "right"):
        ckpt, _, _ = _model(3)
        managers.append(dtckpt.CheckpointManager(ckpt, directory, None, checkpoint_name=name))
    errors: list[BaseException] = []

    def run(manager: dtckpt.CheckpointManager) -> None:
        try:
            for _ in range(3):
                manager.save()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(m,)) for m in managers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    state = dtckpt.train.get_checkpoint_state(directory)
    assert state is not None
    expected = {f"{directory}/{n}-{i}" for n in ("left", "right") for i in (1, 2, 3)}
    assert set(state.all_model_checkpoint_paths) == expected
    assert state.model_checkpoint_path in expected


def test_a_second_writer_of_a_prefix_is_refused(s3_bucket: str) -> None:
    store, key = resolve(f"{s3_bucket}/run/busy")
    claim = PrefixClaim(store, key)
    claim.acquire()  # a live save of this prefix, in this process
    ckpt, _, _ = _model()
    with pytest.raises(ConditionalWriteConflict, match="another writer"):
        ckpt.write(f"{s3_bucket}/run/busy")
    assert object_names(f"{s3_bucket}/run") == []
    assert object_names(f"{s3_bucket}/run/{CLAIMS}") == ["busy"]
    claim.release()
    ckpt.write(f"{s3_bucket}/run/busy")
    assert object_names(f"{s3_bucket}/run") == ["busy.data-00000-of-00001", "busy.index"]
    assert object_names(f"{s3_bucket}/run/{CLAIMS}") == []


def test_the_index_is_created_only_if_absent(s3_bucket: str) -> None:
    store, key = resolve(f"{s3_bucket}/i/p")
    store.create_if_absent(key + ".index", b"someone else's index")
    with pytest.raises(ConditionalWriteConflict):
        store.create_if_absent(key + ".index", b"mine")
    assert store.read(key + ".index") == b"someone else's index"


def test_dtensor_checkpoint_over_s3_reshards(s3_bucket: str, tmp_path: pathlib.Path) -> None:
    mesh = dd.create_mesh([("x", 2), ("y", 4)])
    value = np.arange(64 * 32, dtype=np.float32).reshape(64, 32)
    w = dd.DVariable(dd.copy_to_mesh(value, dd.Layout(["x", "y"], mesh)))
    path = dd.DTensorCheckpoint(mesh, w=w).save(f"{s3_bucket}/dt/ckpt")
    assert path == f"{s3_bucket}/dt/ckpt-1"
    dd.DTensorCheckpoint(mesh, w=w).save(str(tmp_path / "ckpt"))
    names = [n for n in object_names(f"{s3_bucket}/dt") if n.startswith("ckpt-1.")]
    assert len(names) == 9  # the index and 8 data objects, one per device
    fs = s3_filesystem()
    for name in names:  # byte for byte what a local save writes
        local_file = tmp_path / name
        assert fs.cat_file(f"{s3_bucket[5:]}/dt/{name}") == local_file.read_bytes(), name
    other = dd.create_mesh([("a", 4), ("b", 2)])
    fresh = dd.DVariable(dd.copy_to_mesh(np.zeros_like(value), dd.Layout(["b", "a"], other)))
    dd.DTensorCheckpoint(other, w=fresh).restore(path).assert_consumed()
    assert np.array_equal(fresh.numpy(), value)


def test_resharding_restore_reads_what_it_needs(s3_bucket: str) -> None:
    mesh = dd.create_mesh([("x", 2), ("y", 4)])
    value = np.random.default_rng(5).standard_normal((256, 128)).astype(np.float32)
    w = dd.DVariable(dd.copy_to_mesh(value, dd.Layout(["x", "y"], mesh)))
    path = dd.DTensorCheckpoint(mesh, w=w).save(f"{s3_bucket}/rs/ckpt")
    other = dd.create_mesh([("a", 4), ("b", 2)])
    fresh = dd.DVariable(dd.copy_to_mesh(np.zeros_like(value), dd.Layout(["a", "b"], other)))
    store, _ = resolve(path)
    before = store.bytes_read
    dd.DTensorCheckpoint(other, w=fresh).restore(path).assert_consumed()
    read = store.bytes_read - before
    assert np.array_equal(fresh.numpy(), value)
    assert value.nbytes <= read <= 1.1 * value.nbytes  # rule S-SI-3: rows of blocks, no more


def test_restoring_many_small_values_reads_them_ahead_in_few_requests(s3_bucket: str) -> None:
    # Rule S-SI-8: a restore reads its small values ahead, adjacent ones in one request.
    rng = np.random.default_rng(8)
    values = [rng.standard_normal((4, 5)).astype(np.float32) for _ in range(300)]
    root = dtckpt.Module()
    root.layers = [dtckpt.Variable(v) for v in values]
    root.names = [dtckpt.Variable(np.array([b"v%d" % i, b""], dtype=object)) for i in range(5)]
    path = dtckpt.Checkpoint(model=root).write(f"{s3_bucket}/many/ckpt")
    fresh = dtckpt.Module()
    fresh.layers = [dtckpt.Variable(np.zeros((4, 5), np.float32)) for _ in values]
    fresh.names = [dtckpt.Variable(np.array([b"", b""], dtype=object)) for _ in range(5)]
    store, _ = resolve(path)
    before = store.reads
    dtckpt.Checkpoint(model=fresh).read(path).assert_consumed()
    requests = store.reads - before
    for got, want in zip(fresh.layers, values, strict=True):
        assert np.array_equal(got.numpy(), want)
    assert [list(v.numpy()) for v in fresh.names] == [[b"v%d" % i, b""] for i in range(5)]
    assert 1 <= requests <= 3, requests  # 306 values, one data object: not one request each
    # A value whose checksum fails is still refused when it arrived read ahead.
    data = f"{path[5:]}.data-00000-of-00001"
    fs = s3_filesystem()
    key = "model/layers/7/.ATTRIBUTES/VARIABLE_VALUE"
    with BundleReader(path) as reader:
        offset = reader.entry(key).offset
    raw = bytearray(fs.cat_file(data))
    raw[offset + 3] ^= 0xFF
    fs.pipe_file(data, bytes(raw))
    with pytest.raises(dtckpt.errors.DataLossError, match="Checksum") as failed:
        dtckpt.Checkpoint(model=fresh).read(path)
    assert failed.value.key == key.encode() or failed.value.key == key

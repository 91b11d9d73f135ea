"""S3 answering with errors: server errors and refused credentials during saves and restores.

Every request goes through ``tests/faultproxy.py``'s proxy to the moto server, which answers
the requests a test selects with an S3 error instead of forwarding them. A transient error
is retried and the save is as a clean one (S-SI-2); a lasting one raises a typed error naming
the object's URL and leaves the previous checkpoint and the state file as they were (S-OS-7),
and the next save cleans what the failed one left (S-OS-5). Refused credentials are
``PermissionDeniedError`` and are not retried (S-OS-8); a restore that fails changes no
variable (S-OS-9).
"""

from __future__ import annotations

import pathlib
import re
import time
from collections.abc import Iterator, Mapping

import fsspec
import numpy as np
import pytest
import s3fs

import dtckpt
from dtckpt.errors import PermissionDeniedError, UnavailableError
from dtckpt.storage import fsspec_store
from dtckpt.storage.objects import CLAIMS
from dtckpt.storage.urls import resolve

from ..faultproxy import FaultProxy, fault_proxy
from ..s3server import S3Server, assert_two_checkpoints, object_names

#: 3 parts of 5 MiB (S3's smallest) and one small value: 11 MiB of float64.
_BIG = (11 << 20) // 8


@pytest.fixture
def proxy(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The fault proxy, with every ``s3://`` URL of the test going through it.

    Retries are fewer than the defaults (s3fs 5, botocore 5) but still there, so that a
    transient error is retried and a lasting one gives up within seconds.
    """
    monkeypatch.setattr(fsspec_store, "PART_SIZE", 5 << 20)
    monkeypatch.setattr(s3fs.S3FileSystem, "retries", 2)
    with fault_proxy(s3_server.endpoint) as running:
        # A file system of its own (s3fs caches instances by their arguments).
        monkeypatch.setitem(
            fsspec.config.conf,
            "s3",
            {
                "client_kwargs": {"endpoint_url": running.endpoint},
                "config_kwargs": {"retries": {"max_attempts": 2}},
            },
        )
        yield running


def _model(seed: int = 0) -> tuple[dtckpt.Checkpoint, dict[str, dtckpt.Variable]]:
    rng = np.random.default_rng(seed)
    variables = {
        "big": dtckpt.Variable(rng.standard_normal(_BIG), name="big"),
        "small": dtckpt.Variable(rng.standard_normal((8, 8)).astype(np.float32), name="small"),
        "words": dtckpt.Variable(np.array([b"a", b"bc", b""], dtype=object), name="words"),
    }
    return dtckpt.Checkpoint(**variables), variables


def _values(variables: dict[str, dtckpt.Variable]) -> dict[str, np.ndarray]:
    return {name: v.numpy().copy() for name, v in variables.items()}


def _assert_values(variables: dict[str, dtckpt.Variable], expected: dict[str, np.ndarray]) -> None:
    for name, v in variables.items():
        assert np.array_equal(v.numpy(), expected[name]), name


def _shift(variables: dict[str, dtckpt.Variable], by: float) -> None:
    for name, v in variables.items():
        if name != "words":
            v.assign(v.numpy() + by)


def _read(url: str) -> bytes:
    store, key = resolve(url)
    return store.read(key)


def test_transient_slowdowns_are_retried_and_the_bytes_are_a_clean_saves(
    s3_bucket: str, proxy: FaultProxy, tmp_path: pathlib.Path
) -> None:
    ckpt, variables = _model()
    parts = proxy.inject("SlowDown", r"partNumber=", method="PUT", times=3)
    index = proxy.inject("ServiceUnavailable", r"\.index$", method="PUT", times=1)
    remote = ckpt.write(f"{s3_bucket}/run/ckpt")
    assert (parts.hits, index.hits) == (3, 1)
    local = ckpt.write(str(tmp_path / "ckpt"))
    for suffix in (".index", ".data-00000-of-00001"):
        assert _read(remote + suffix) == pathlib.Path(local + suffix).read_bytes(), suffix
    assert object_names(f"{s3_bucket}/run") == ["ckpt.data-00000-of-00001", "ckpt.index"]
    assert object_names(f"{s3_bucket}/run/{CLAIMS}") == []

    # A restore through transient errors on its reads comes out whole too.
    expected = _values(variables)
    _shift(variables, 1)
    reads = proxy.inject("InternalError", r"\.data-", method="GET", times=2)
    ckpt.read(remote).assert_consumed()
    assert reads.hits == 2
    _assert_values(variables, expected)


#: Requests of a manager's second save that fail for good: a data part, the index's
#: creation, the state file's replacement (after the index: the new checkpoint exists).
_LASTING = {
    "data part": ("PUT", r"ckpt-2\.data-.*partNumber=2"),
    "index": ("PUT", r"ckpt-2\.index$"),
    "state file": ("PUT", r"/run/checkpoint$"),
}


@pytest.mark.parametrize("where", sorted(_LASTING))
def test_a_lasting_server_error_leaves_the_previous_checkpoint(
    s3_bucket: str, proxy: FaultProxy, where: str
) -> None:
    ckpt, variables = _model()
    directory = f"{s3_bucket}/run"
    manager = dtckpt.CheckpointManager(ckpt, directory, max_to_keep=3)
    first = manager.save()
    state = _read(f"{directory}/checkpoint")
    expected = _values(variables)

    method, pattern = _LASTING[where]
    fault = proxy.inject("InternalError", pattern, method=method)
    _shift(variables, 1)
    with pytest.raises(UnavailableError) as info:
        manager.save()
    assert fault.hits >= 2  # retried, a bounded number of times
    assert info.value.path is not None and info.value.path.startswith(f"{directory}/")
    assert directory in str(info.value)
    proxy.clear()

    assert _read(f"{directory}/checkpoint") == state
    assert dtckpt.latest_checkpoint(directory) == first
    _shift(variables, 1)
    ckpt.restore(first).assert_consumed()
    _assert_values(variables, expected)

    # The next save (ckpt-2 again: the restore set save_counter back) succeeds and leaves
    # nothing of the failed one.
    _shift(variables, 5)
    again = manager.save()
    assert again == f"{directory}/ckpt-2"
    assert_two_checkpoints(directory)
    assert dtckpt.latest_checkpoint(directory) == again
    saved = _values(variables)
    _shift(variables, 1)
    ckpt.restore(again).assert_consumed()
    _assert_values(variables, saved)


@pytest.mark.parametrize("code", ["ExpiredToken", "InvalidAccessKeyId", "AccessDenied"])
@pytest.mark.parametrize("where", ["every request", "data parts"])
def test_refused_credentials_at_save(
    s3_bucket: str, proxy: FaultProxy, code: str, where: str
) -> None:
    ckpt, variables = _model()
    directory = f"{s3_bucket}/run"
    manager = dtckpt.CheckpointManager(ckpt, directory, max_to_keep=3)
    first = manager.save()
    state = _read(f"{directory}/checkpoint")
    expected = _values(variables)

    pattern = "" if where == "every request" else r"partNumber="
    fault = proxy.inject(code, pattern)
    _shift(variables, 1)
    started = time.monotonic()
    with pytest.raises(PermissionDeniedError) as info:
        manager.save()
    elapsed = time.monotonic() - started
    assert directory in str(info.value)
    # Not retried (S-OS-8): each request that was refused was sent once. The 3 parts of
    # the data object are sent in parallel, and the failed save's clean-up is refused too.
    refused = [r for r in proxy.requests if r[2] == 403]
    assert len(refused) == fault.hits
    assert len({(m, t) for m, t, _ in refused}) == len(refused), refused
    assert elapsed < 10, f"a refused save took {elapsed:.1f} s"
    proxy.clear()

    assert _read(f"{directory}/checkpoint") == state
    assert dtckpt.latest_checkpoint(directory) == first
    _shift(variables, 1)
    ckpt.restore(first).assert_consumed()
    _assert_values(variables, expected)
    manager.save()
    assert_two_checkpoints(directory)


@pytest.mark.parametrize("where", ["every request", "data reads"])
def test_refused_credentials_at_restore(s3_bucket: str, proxy: FaultProxy, where: str) -> None:
    ckpt, variables = _model()
    directory = f"{s3_bucket}/run"
    manager = dtckpt.CheckpointManager(ckpt, directory, max_to_keep=3)
    first = manager.save()
    before = {
        name: _read(f"{first}{suffix}")
        for name, suffix in (("index", ".index"), ("data", ".data-00000-of-00001"))
    }
    _shift(variables, 1)
    changed = _values(variables)

    pattern = "" if where == "every request" else r"\.data-"
    proxy.inject("ExpiredToken", pattern, method=None if where == "every request" else "GET")
    started = time.monotonic()
    with pytest.raises(PermissionDeniedError) as info:
        ckpt.restore(first)
    elapsed = time.monotonic() - started
    assert directory in str(info.value)
    assert elapsed < 10, f"a refused restore took {elapsed:.1f} s"
    refused = [r for r in proxy.requests if r[2] == 403]
    assert len({(m, t) for m, t, _ in refused}) == len(refused), refused
    proxy.clear()
    _assert_values(variables, changed)  # S-OS-9: nothing restored
    assert {
        name: _read(f"{first}{suffix}")
        for name, suffix in (("index", ".index"), ("data", ".data-00000-of-00001"))
    } == before


def test_a_server_error_mid_read_leaves_the_value_being_read(
    s3_bucket: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsspec_store, "READ_PIECE", 1 << 20)  # the big value in 11 GETs
    ckpt, variables = _model()
    first = ckpt.write(f"{s3_bucket}/run/ckpt")
    expected = _values(variables)
    _shift(variables, 1)
    changed = _values(variables)
    # The index and the first data reads arrive; a later piece of the data fails for good.
    fault = proxy.inject("InternalError", r"\.data-", method="GET", after=4)
    with pytest.raises(UnavailableError) as info:
        ckpt.read(first)
    assert fault.hits >= 2
    assert info.value.path == f"{first}.data-00000-of-00001"
    # S-OS-9: a value assigned before the failure holds the checkpoint's value, the others
    # are as they were; the big one, whose requests (one batch) failed, is untouched.
    for name, v in variables.items():
        now = v.numpy()
        assert np.array_equal(now, changed[name]) or np.array_equal(now, expected[name]), name
    assert np.array_equal(variables["big"].numpy(), changed["big"])
    proxy.clear()
    ckpt.read(first).assert_consumed()
    _assert_values(variables, expected)


def test_a_value_longer_than_a_batch_read_in_place_says_it_holds_the_bytes_read(
    s3_bucket: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsspec_store, "READ_PIECE", 1 << 20)
    monkeypatch.setattr(fsspec_store, "MAX_IN_FLIGHT", 4 << 20)  # the big value in 3 batches
    ckpt, variables = _model()
    first = ckpt.write(f"{s3_bucket}/run/ckpt")
    with dtckpt.load_checkpoint(first) as reader:  # where the big value's bytes begin
        start = reader.bundle.entry("big/.ATTRIBUTES/VARIABLE_VALUE").offset
    expected = _values(variables)
    _shift(variables, 1)
    changed = _values(variables)

    def past_the_first_batch(headers: Mapping[str, str]) -> bool:
        wanted = re.fullmatch(r"bytes=(\d+)-\d+", headers.get("range", ""))
        return wanted is not None and start + (4 << 20) <= int(wanted.group(1)) < start + _BIG * 8

    proxy.inject("InternalError", r"\.data-", method="GET", headers=past_the_first_batch)
    held = "read in place: big:0 now holds what was read before the error"
    with pytest.raises(UnavailableError, match=held):
        ckpt.read(first)
    now = variables["big"].numpy()
    first_batch = slice(0, (4 << 20) // 8)
    assert np.array_equal(now[first_batch], expected["big"][first_batch])
    assert np.array_equal(now[(8 << 20) // 8 :], changed["big"][(8 << 20) // 8 :])
    proxy.clear()
    ckpt.read(first).assert_consumed()
    _assert_values(variables, expected)

"""Rule H-SP-1: special files under a checkpoint's names are refused by type, never read.

Every test runs under a deadline: a reader that opened a FIFO the plain way would block
forever, and ``SIGALRM`` turns that into a failure instead of a hung suite.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import dtckpt
from dtckpt.cli import main
from dtckpt.errors import InvalidArgumentError, NotFoundError
from dtckpt.storage.inputs import file_kind, open_input, read_input

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")

KEY = "v/.ATTRIBUTES/VARIABLE_VALUE"


@contextlib.contextmanager
def deadline(seconds: int = 10) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError("blocked on a special file")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _checkpoint(directory: pathlib.Path) -> str:
    checkpoint = dtckpt.Checkpoint(v=dtckpt.Variable(np.arange(3, dtype=np.float32)))
    return checkpoint.save(str(directory / "ckpt"))


def _replace(path: pathlib.Path, kind: str, keep: list[socket.socket]) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        keep.append(server)


KINDS = ["fifo", "dev-zero", "directory", "socket"]
_FOUND = {
    "fifo": "a FIFO",
    "dev-zero": "a character device",
    "directory": "a directory",
    "socket": "a socket",
}


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    yield held
    for server in held:
        server.close()


def test_the_helper_refuses_by_type(tmp_path: pathlib.Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "file").write_bytes(b"abc")
    with deadline():
        for name, found in (("fifo", "a FIFO"), ("zero", "a character device")):
            with pytest.raises(NotFoundError, match=f"expected an index file, found {found}"):
                open_input(str(tmp_path / name), what="an index file")
        with pytest.raises(NotFoundError, match="found a directory"):
            read_input(str(tmp_path))
        with pytest.raises(NotFoundError, match="no such file"):
            read_input(str(tmp_path / "missing"))
        assert read_input(str(tmp_path / "file")) == b"abc"
        with pytest.raises(dtckpt.errors.DataLossError, match="more than the 2"):
            read_input(str(tmp_path / "file"), limit=2)
    assert file_kind(os.stat(tmp_path / "file").st_mode) == "a regular file"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("which", ["index", "data"])
def test_bundle_files(
    tmp_path: pathlib.Path,
    kind: str,
    which: str,
    sockets: list[socket.socket],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = _checkpoint(tmp_path)
    name = prefix + (".index" if which == "index" else ".data-00000-of-00001")
    _replace(pathlib.Path(name), kind, sockets)
    expected = "an index file" if which == "index" else "a data file"
    with deadline():
        with pytest.raises(NotFoundError, match=f"expected {expected}, found") as info:
            dtckpt.load_checkpoint(prefix).get_tensor(KEY)
        assert info.value.path == name
        with pytest.raises(NotFoundError):
            dtckpt.Checkpoint(v=dtckpt.Variable(np.zeros(3, np.float32))).restore(prefix)
        status = 1
        assert main(["verify", prefix]) == status
        if which == "index":
            capsys.readouterr()
            assert main(["inspect", prefix]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"found {_FOUND[kind]}" in err
        else:
            assert main(["inspect", prefix]) == 0  # the listing needs only the index
        assert main(["pack", prefix, str(tmp_path / "a.dtar")]) == 1
        assert not (tmp_path / "a.dtar").exists()
        assert main(["convert", prefix, str(tmp_path / "a.npz")]) == 1


def test_a_fifo_data_file_is_never_packed_as_an_empty_member(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = _checkpoint(tmp_path / "run")
    _replace(pathlib.Path(prefix + ".data-00000-of-00001"), "fifo", [])
    with deadline():
        for source in (prefix, str(tmp_path / "run")):
            with pytest.raises(InvalidArgumentError, match="it is a FIFO, not a regular file"):
                dtckpt.archive.pack(source, str(tmp_path / "a.dtar"))
    assert not (tmp_path / "a.dtar").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_state_file(
    tmp_path: pathlib.Path,
    kind: str,
    sockets: list[socket.socket],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _checkpoint(tmp_path)
    _replace(tmp_path / "checkpoint", kind, sockets)
    with deadline(), caplog.at_level(logging.DEBUG, logger="dtckpt"):
        assert dtckpt.latest_checkpoint(str(tmp_path)) is None
        with pytest.raises(NotFoundError):
            dtckpt.load_checkpoint(str(tmp_path))
        capsys.readouterr()
        assert main(["inspect", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("dtckpt: error: ") and err.count("\n") == 1  # one line
        called: list[int] = []
        checkpoint = dtckpt.Checkpoint(v=dtckpt.Variable(np.zeros(3, np.float32)))
        manager = dtckpt.CheckpointManager(
            checkpoint, str(tmp_path), max_to_keep=2, init_fn=lambda: called.append(1)
        )
        assert manager.restore_or_initialize() is None and called == [1]
    assert "expected a state file, found" in caplog.text


@pytest.mark.parametrize("suffix", [".dtar", ".npz", ".safetensors"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_archives_and_interop_files(
    tmp_path: pathlib.Path, suffix: str, kind: str, sockets: list[socket.socket]
) -> None:
    path = tmp_path / ("a" + suffix)
    path.write_bytes(b"")
    _replace(path, kind, sockets)
    readers: list[Callable[[], Any]] = [
        lambda: dtckpt.interop.convert(str(path), str(tmp_path / "out")),
    ]
    if suffix == ".dtar":
        readers = [
            lambda: dtckpt.archive.ArchiveReader(str(path)),
            lambda: dtckpt.archive.unpack(str(path), str(tmp_path / "out")),
        ]
    with deadline():
        for read in readers:
            with pytest.raises(NotFoundError, match="found a"):
                read()
        assert not dtckpt.archive.is_archive(str(path))


def test_data_files_are_found_however_the_prefix_is_spelled(tmp_path: pathlib.Path) -> None:
    """Rule H-WK-1: the shards present come from one listing, matched by file name."""
    from dtckpt.format.verify import verify_bundle

    dtckpt.save_v2(str(tmp_path / "ckpt"), ["x"], [""], [np.arange(3)])
    for spelling in (
        f"{tmp_path}//ckpt",
        f"{tmp_path}/./ckpt",
        f"{tmp_path}/../{tmp_path.name}/ckpt",
    ):
        with dtckpt.BundleReader(spelling) as reader:
            assert reader.present_shards() == [0]
        assert verify_bundle(spelling).ok

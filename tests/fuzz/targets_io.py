"""Fuzz targets for the readers above the bundle decoders (rules H-FZ-1, H-WK-*, H-SP-1).

Each target takes the fuzzer's bytes; most can read them two ways, chosen by the low bit of
the first byte: as the raw file (byte flips of real files) or as choices for a generator of
``tests/fuzz/generators.py`` (hostile structures built on purpose). On top of "only typed
errors escape" (H-ER-1) each target checks what its rules promise:

* ``bundle_gen``: a generated bundle through the bundle target, which also verifies it and
  lists it (H-BD-7, H-BD-8, H-WK-1);
* ``graph_gen``: a generated object graph through the object-graph target, which also draws it
  and lists it as ``inspect`` does, with bounded paths and depth (H-WK-2);
* ``archive``: ``ArchiveReader``, every member read, ``unpack`` and ``load_checkpoint`` (H-WK-1,
  H-AL-2): unpacked files hold exactly the members' bytes;
* ``safetensors`` and ``npz``: the interop readers, every tensor streamed (H-WK-1, H-BD-7);
* ``manager``: a ``CheckpointManager`` over a state file of hostile spellings saves, and the
  checkpoint it wrote survives, restorable, while nothing outside its directory and nothing
  but checkpoint files is deleted (S-MG-2, S-MG-3);
* ``special``: a file of a checkpoint replaced by a FIFO, ``/dev/zero``, a directory, a socket
  or a dangling link, read by one of the entry points: a typed error or a value, within a
  deadline (H-SP-1).

Generated files may be larger than the fuzzer's bytes: :func:`real_size` gives the size the
allocation budget (H-AL-1) is counted against.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import pathlib
import signal
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from dtckpt.errors import CheckpointError
from tests.fuzz import generators as gen

__all__ = ["IO_TARGETS", "real_size", "remove_tree", "DEADLINE_SECONDS"]

#: Seconds an entry point of the ``special`` target may take before it counts as blocked.
DEADLINE_SECONDS = 10


_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)


def remove_tree(root: str | pathlib.Path) -> None:
    """``shutil.rmtree`` without recursion or long paths: unpacked archives may hold
    directories thousands of levels deep. Links are removed, never followed."""
    root = str(root)
    if not os.path.lexists(root):
        return
    if os.path.islink(root) or not os.path.isdir(root):
        os.unlink(root)
        return
    fd = os.open(root, _DIRECTORY)
    names: list[str] = []
    try:
        while True:
            child = -1
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        flags = _DIRECTORY | getattr(os, "O_NOFOLLOW", 0)
                        child = os.open(entry.name, flags, dir_fd=fd)
                        names.append(entry.name)
                        break
                    os.unlink(entry.name, dir_fd=fd)
            if child >= 0:
                os.close(fd)
                fd = child
                continue
            if not names:
                break
            parent = os.open("..", _DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(names.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(root)


@functools.cache
def _root() -> pathlib.Path:
    path = tempfile.mkdtemp(prefix="dtckpt-fuzz-io-")
    atexit.register(remove_tree, path)
    return pathlib.Path(path)


def _fresh(name: str) -> pathlib.Path:
    """An empty scratch directory for one execution of a target."""
    directory = _root() / name
    remove_tree(directory)
    directory.mkdir()
    return directory


def _mode(data: bytes) -> tuple[bool, bytes]:
    """``(generated, rest)``: the low bit of the first byte picks the generator."""
    if not data:
        return False, b""
    return bool(data[0] & 1), data[1:]


# --- sizes for the budget -------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _generated(kind: str, data: bytes) -> bytes:
    draw = gen.Draw(data)
    builder: dict[str, Callable[[gen.Draw], bytes]] = {
        "bundle_gen": gen.bundle_case,
        "graph_gen": gen.graph_case,
        "archive": gen.archive_case,
        "safetensors": gen.safetensors_case,
        "npz": gen.npz_case,
    }
    return builder[kind](draw)


def _file_bytes(kind: str, data: bytes) -> bytes:
    if kind in ("bundle_gen", "graph_gen"):
        return _generated(kind, data)
    generated, rest = _mode(data)
    return _generated(kind, rest) if generated else rest


def real_size(target: str, data: bytes) -> int:
    """The bytes of input a run of ``target`` on ``data`` really reads (rule H-AL-1)."""
    if target in ("bundle_gen", "graph_gen", "archive", "safetensors", "npz"):
        return max(len(data), len(_file_bytes(target, data)))
    return len(data)


# --- bundles and graphs ---------------------------------------------------------------------


def bundle_gen_target(data: bytes) -> None:
    from tests.fuzz.targets import bundle_target

    bundle_target(_file_bytes("bundle_gen", data))


def graph_gen_target(data: bytes) -> None:
    from tests.fuzz.targets import object_graph_target

    object_graph_target(_file_bytes("graph_gen", data))


# --- archives -------------------------------------------------------------------------------


def archive_target(data: bytes) -> None:
    from dtckpt.archive.reader import ArchiveReader
    from dtckpt.archive.source import INDEX_RATIO, INDEX_SLACK
    from dtckpt.checkpoint.reader import load_checkpoint

    directory = _fresh("archive")
    path = directory / "fuzz.dtar"
    path.write_bytes(_file_bytes("archive", data))
    members: dict[str, bytes] = {}
    with ArchiveReader(str(path)) as reader:
        for name in reader.names():
            limit = INDEX_SLACK + INDEX_RATIO * reader.compressed_size(name)
            try:
                members[name] = bytes(reader.read_member_view(name, limit=limit))
            except CheckpointError:
                continue
    # Unpacking makes a directory per name component; removing thousands of them afterwards
    # costs seconds on some file systems, so deep archives are unpacked by the regression
    # tests (test_hostile.py) rather than on every execution.
    if sum(name.count("/") for name in reader.members) <= _UNPACK_COMPONENTS:
        _check_unpack(path, directory / "out", members, len(reader.members))
    with load_checkpoint(str(path)) as checkpoint:
        for key in checkpoint.bundle.keys():
            _read_or_typed(lambda key=key: checkpoint.get_tensor(key.decode("latin-1")))


def _check_unpack(
    path: pathlib.Path, out: pathlib.Path, members: dict[str, bytes], count: int
) -> None:
    """``unpack`` writes every member, each holding exactly the member's bytes."""
    from dtckpt.archive.unpacking import unpack

    try:
        report = unpack(str(path), str(out))
    except CheckpointError:
        return
    if report.files != len(members) and len(members) == count:
        raise AssertionError(f"unpack wrote {report.files} of {len(members)} members")
    for name, expected in members.items():
        written = out.joinpath(*name.split("/"))
        if _readable(written) and written.read_bytes() != expected:
            raise AssertionError(f"unpacked {name!r} differs from the member")


#: Directories an execution of the archive target may make by unpacking.
_UNPACK_COMPONENTS = 500


def _readable(path: pathlib.Path) -> bool:
    try:
        return path.is_file() and len(str(path)) < 4000
    except OSError:
        return False


def _read_or_typed(read: Callable[[], Any]) -> None:
    try:
        read()
    except CheckpointError:
        pass


# --- safetensors and npz --------------------------------------------------------------------


def _stream_all(source: Any) -> None:
    with source:
        for tensor in source.tensors:
            total = 0
            try:
                for chunk in tensor.chunks():
                    total += chunk.nbytes if chunk.dtype != object else 0
            except CheckpointError:
                continue
            if not tensor.dtype.is_string and total != tensor.nbytes:
                raise AssertionError(f"{tensor.key}: {total} bytes streamed, {tensor.nbytes} due")


def safetensors_target(data: bytes) -> None:
    from dtckpt.interop.safetensors_io import read_safetensors

    path = _fresh("safetensors") / "fuzz.safetensors"
    path.write_bytes(_file_bytes("safetensors", data))
    _stream_all(read_safetensors(str(path)))


def npz_target(data: bytes) -> None:
    from dtckpt.interop.npz_read import read_npz

    path = _fresh("npz") / "fuzz.npz"
    path.write_bytes(_file_bytes("npz", data))
    _stream_all(read_npz(str(path)))


# --- the manager ----------------------------------------------------------------------------


@functools.cache
def _template() -> dict[str, bytes]:
    """The files of one small checkpoint, to copy under any name."""
    import dtckpt

    directory = _root() / "template"
    directory.mkdir(exist_ok=True)
    dtckpt.Checkpoint(v=dtckpt.Variable(np.float32(1.0))).write(str(directory / "t"))
    return {p.name[1:]: p.read_bytes() for p in directory.iterdir()}


def _put(prefix: pathlib.Path) -> None:
    for suffix, content in _template().items():
        pathlib.Path(f"{prefix}{suffix}").write_bytes(content)


def _snapshot(directory: pathlib.Path) -> dict[str, bytes]:
    """Every regular file under ``directory`` (links not followed) and its bytes."""
    found = {}
    for parent, _, names in os.walk(directory):
        for name in names:
            path = pathlib.Path(parent, name)
            if path.is_file() and not path.is_symlink():
                found[str(path.relative_to(directory))] = path.read_bytes()
    return found


def manager_target(data: bytes) -> None:
    import dtckpt
    from dtckpt.checkpoint.state import CheckpointState, format_checkpoint_state

    case = gen.state_case(gen.Draw(data))
    root = _fresh("manager")
    run, outside = root / "run", root / "outside"
    (run / "sub").mkdir(parents=True)
    outside.mkdir()
    (run / "alias").symlink_to(run, target_is_directory=True)
    for number in case.present:
        _put(run / f"ckpt-{number}")
        _put(outside / f"ckpt-{number}")
    listed = [p.replace("{dir}", str(run)) for p in case.listed]
    if listed:
        stamps = [100.0 + i for i in range(len(listed))]
        state = CheckpointState(listed[-1], listed, stamps, 50.0)
        (run / "checkpoint").write_text(format_checkpoint_state(state))
    before_outside = _snapshot(outside)
    before = _snapshot(run)
    checkpoint = dtckpt.Checkpoint(v=dtckpt.Variable(np.float32(7.0)))
    manager = dtckpt.CheckpointManager(checkpoint, str(run), max_to_keep=case.max_to_keep)
    saved = manager.save(checkpoint_number=case.save_number)
    if saved is None:
        raise AssertionError("a save without an interval was skipped")
    if _snapshot(outside) != before_outside:
        raise AssertionError("the manager changed files outside its directory")
    after = _snapshot(run)
    for name in set(before) - set(after):
        if not (name.startswith("ckpt-") and (".index" in name or ".data-" in name)):
            raise AssertionError(f"the manager deleted {name!r}, not a checkpoint file")
    if manager.checkpoints[-1:] != [saved]:
        raise AssertionError(f"the newest checkpoint {saved} is not the last kept")
    fresh = dtckpt.Checkpoint(v=dtckpt.Variable(np.float32(0.0)))
    fresh.restore(saved).assert_consumed()  # the checkpoint just written survived the sweep
    if float(fresh.v.numpy()) != 7.0:
        raise AssertionError("the newest checkpoint does not hold what was saved")


# --- special files --------------------------------------------------------------------------


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Raise ``TimeoutError`` (a finding) in the block after ``seconds``, unless a harness
    already runs its own timer (then that one catches a hang)."""
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"blocked for {seconds} s on a special file (rule H-SP-1)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _make_special(path: pathlib.Path, kind: str, held: list[socket.socket]) -> None:
    remove_tree(path)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    elif kind == "dangling-link":
        path.symlink_to(path.parent / "nowhere")
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        held.append(server)


def _special_scene(root: pathlib.Path) -> dict[str, pathlib.Path]:
    import dtckpt
    from dtckpt.archive.writer import pack
    from dtckpt.interop.convert import convert

    run = root / "run"
    run.mkdir()
    prefix = pathlib.Path(
        dtckpt.Checkpoint(v=dtckpt.Variable(np.arange(3, dtype=np.float32))).save(str(run / "ckpt"))
    )
    other = root / "files"
    other.mkdir()
    pack(str(prefix), str(other / "a.dtar"))
    convert(str(prefix), str(other / "a.npz"))
    convert(str(prefix), str(other / "a.safetensors"))
    return {
        "prefix": prefix,
        "index": pathlib.Path(f"{prefix}.index"),
        "data": pathlib.Path(f"{prefix}.data-00000-of-00001"),
        "state": run / "checkpoint",
        "archive": other / "a.dtar",
        "npz": other / "a.npz",
        "safetensors": other / "a.safetensors",
        "run": run,
        "out": root / "out",
    }


def _special_readers(scene: dict[str, pathlib.Path]) -> list[Callable[[], Any]]:
    import dtckpt
    from dtckpt.archive.reader import ArchiveReader
    from dtckpt.archive.writer import pack
    from dtckpt.cli.inspect import describe
    from dtckpt.format.verify import verify_bundle
    from dtckpt.interop.convert import convert, read_tensors

    prefix, run = str(scene["prefix"]), str(scene["run"])
    key = "v/.ATTRIBUTES/VARIABLE_VALUE"

    def manager() -> Any:
        checkpoint = dtckpt.Checkpoint(v=dtckpt.Variable(np.zeros(3, np.float32)))
        return dtckpt.CheckpointManager(checkpoint, run, max_to_keep=2).restore_or_initialize()

    def listing() -> Any:
        with dtckpt.load_checkpoint(prefix) as reader:
            return describe(reader)

    def stream(path: pathlib.Path) -> Callable[[], Any]:
        def read() -> Any:
            with read_tensors(str(path)) as source:
                return [t.read() for t in source.tensors]

        return read

    def archive() -> Any:
        with ArchiveReader(str(scene["archive"])) as reader:
            return [reader.read_member(name) for name in reader.names()]

    return [
        lambda: dtckpt.load_checkpoint(run).get_tensor(key),
        lambda: dtckpt.load_checkpoint(prefix, mmap=True).get_tensor(key),
        lambda: verify_bundle(prefix),
        listing,
        manager,
        lambda: pack(prefix, str(scene["out"]) + ".dtar"),
        lambda: convert(prefix, str(scene["out"]) + ".npz"),
        lambda: [stream(scene["npz"])(), stream(scene["safetensors"])(), archive()],
    ]


def special_target(data: bytes) -> None:
    case = gen.special_case(gen.Draw(data))
    root = _fresh("special")
    scene = _special_scene(root)
    held: list[socket.socket] = []
    try:
        _make_special(scene[case.file], case.kind, held)
        readers = _special_readers(scene)
        with _deadline(DEADLINE_SECONDS):
            try:
                readers[case.reader % len(readers)]()
            except CheckpointError:
                pass
        if case.reader % len(readers) == 5 and case.file in ("index", "data"):
            if os.path.exists(str(scene["out"]) + ".dtar"):
                raise AssertionError("pack wrote an archive of a special file")
    finally:
        for server in held:
            server.close()


def _targets() -> dict[str, tuple[Callable[[bytes], None], str]]:
    return {
        "bundle_gen": (bundle_gen_target, "generated bundles: ranks, nested slices, shards"),
        "graph_gen": (graph_gen_target, "generated object graphs: deep, wide, cyclic"),
        "archive": (archive_target, "archive reader, unpack, load_checkpoint(archive)"),
        "safetensors": (safetensors_target, "read_safetensors, every tensor streamed"),
        "npz": (npz_target, "read_npz, every tensor streamed"),
        "manager": (manager_target, "CheckpointManager over hostile state files"),
        "special": (special_target, "FIFOs, devices, directories as checkpoint files"),
    }


IO_TARGETS = _targets()

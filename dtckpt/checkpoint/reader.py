"""``CheckpointReader``, ``load_checkpoint`` and ``list_variables`` with TF's semantics.

Mirrors ``tf.train.load_checkpoint`` / ``tf.train.list_variables``
(``tensorflow/python/training/checkpoint_utils.py``) and the C++
``CheckpointReader`` (``tensorflow/c/checkpoint_reader.cc``): slice keys of
partitioned tensors are hidden, and a partitioned tensor is listed with its
full shape.

Besides TF's prefixes and checkpoint directories, every function here also
opens a SavedModel directory (its ``variables/variables``) and an archive
written by :func:`dtckpt.archive.pack`, read in place (rule A-RD-2)::

    load_checkpoint("model.dtar")                 the archive's latest checkpoint
    load_checkpoint("model.dtar::ckpt-2")         a prefix (or directory) inside it
    load_checkpoint("model.dtar", member="ckpt-2")
"""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING, Any

import numpy as np

from ..archive.paths import member_path, normalize_member, split_archive_path
from ..dtypes import info
from ..errors import CheckpointError, InvalidArgumentError, NotFoundError
from ..format.bundle_reader import BundleReader
from ..format.naming import key_bytes, key_str
from ..storage.urls import is_url
from ..storage.urls import resolve as resolve_url

# ``.state`` (the state file, its atomic rewrite and its collectives) is imported where a
# directory or an archived state file is resolved: opening a prefix, as ``dtckpt inspect``
# does, never needs it (V-CL-4).

if TYPE_CHECKING:
    from ..archive.reader import ArchiveReader

__all__ = [
    "CheckpointReader",
    "load_checkpoint",
    "list_variables",
    "resolve_checkpoint_path",
    "resolve_save_path",
    "open_bundle",
]

#: A SavedModel keeps its variables as the checkpoint ``variables/variables``.
SAVED_MODEL_VARIABLES = ("variables", "variables")
#: The files that make a directory a SavedModel.
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
#: A ``checkpoint`` state file inside an archive larger than this is not a state file.
_MAX_STATE_BYTES = 64 << 20


class CheckpointReader:
    """Reads tensors of the checkpoint at ``prefix`` (TF's ``CheckpointReader``).

    ``mmap=True`` returns read-only arrays over memory-mapped data files
    (zero-copy; checksums are still verified). They stay backed by the files: a
    program that truncates or rewrites a data file in place while they live
    changes them, or kills the process with ``SIGBUS`` (rule H-SP-2). ``prefix`` may also name an
    archive or ``ARCHIVE::MEMBER`` (see :func:`open_bundle`).
    """

    def __init__(self, prefix: str, *, mmap: bool = False) -> None:
        self._bundle = open_bundle(prefix, mmap=mmap)
        self.prefix = self._bundle.prefix

    def close(self) -> None:
        self._bundle.close()

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def bundle(self) -> BundleReader:
        """The underlying :class:`~dtckpt.format.bundle_reader.BundleReader`."""
        return self._bundle

    def has_tensor(self, key: str) -> bool:
        return self._bundle.index.is_visible(key_bytes(key))

    def get_tensor(self, key: str) -> np.ndarray:
        """The whole tensor; raises :class:`~dtckpt.errors.TensorNotFoundError` if absent."""
        return self._bundle.read(key_bytes(key))

    def get_variable_to_shape_map(self) -> dict[str, list[int]]:
        return {key_str(k): shape for k, shape in self._bundle.index.shape_map().items()}

    def get_variable_to_dtype_map(self) -> dict[str, np.dtype[Any]]:
        return {
            key_str(k): info(dtype).numpy for k, dtype in self._bundle.index.dtype_map().items()
        }


def open_bundle(prefix: str, *, mmap: bool = False) -> BundleReader:
    """A :class:`BundleReader` for a prefix on disk, or for a checkpoint in an archive.

    ``ARCHIVE`` and ``ARCHIVE::MEMBER`` are resolved inside the archive (rule A-RD-2) and
    read in place: the reader's prefix is then ``ARCHIVE::PREFIX``. With ``mmap=True`` an
    archive's tensors come back read-only but decoded into memory (rule A-RD-3).
    """
    prefix = os.fspath(prefix)
    split = split_archive_path(prefix)
    if split is None:
        return BundleReader(prefix, mmap=mmap)
    from ..archive.reader import ArchiveReader
    from ..archive.source import ArchiveSource

    archive, member = split
    reader = ArchiveReader(archive)
    try:
        inner = archive_prefix(reader, member)
    except BaseException:
        reader.close()
        raise
    return BundleReader(member_path(archive, inner), mmap=mmap, source=ArchiveSource(reader))


def archive_prefix(reader: ArchiveReader, member: str | None) -> str:
    """The member prefix ``member`` means inside an archive (rule A-RD-2).

    A member prefix with a ``.index`` member is itself. A member directory (the archive's
    root when ``member`` is ``None``) means, in order: the checkpoint its ``checkpoint``
    state file names, its SavedModel's ``variables/variables``, or the only bundle under it.
    """
    name = normalize_member(member or "")
    if name and name + ".index" in reader.members:
        return name
    under = [n for n in reader.members if not name or n.startswith(name + "/")]
    indexes = sorted(n[: -len(".index")] for n in under if n.endswith(".index"))
    found = _latest_in_archive(reader, name) if under else None
    if found is None:
        found = posixpath.join(name, *SAVED_MODEL_VARIABLES)
        if found + ".index" not in reader.members:
            found = indexes[0] if len(indexes) == 1 else None
    if found is None:
        what = f"no checkpoint {member!r}" if name else "no single checkpoint"
        known = sorted(n[: -len(".index")] for n in reader.members if n.endswith(".index"))
        raise NotFoundError(
            f"{what} in this archive; its checkpoint prefixes: {known or 'none'}",
            path=reader.path,
        )
    return found


def _latest_in_archive(reader: ArchiveReader, directory: str) -> str | None:
    """The prefix the archived ``directory/checkpoint`` names, if its index is archived too.

    Relative paths are relative to ``directory``; an absolute one (TF wrote those once) is
    looked up by its base name there, as for a directory moved after saving.
    """
    from .state import STATE_FILENAME, parse_checkpoint_state

    state_name = posixpath.join(directory, STATE_FILENAME)
    state = reader.members.get(state_name)
    if state is None or state.size > _MAX_STATE_BYTES:
        return None
    try:
        text = reader.read_member(state_name).decode("utf-8", errors="surrogateescape")
        latest = parse_checkpoint_state(text).model_checkpoint_path
    except CheckpointError:
        return None
    if not latest:
        return None
    candidates = [posixpath.basename(latest)]
    if not posixpath.isabs(latest):
        candidates.insert(0, latest)
    for candidate in candidates:
        prefix = posixpath.normpath(posixpath.join(directory, candidate))
        if prefix + ".index" in reader.members:
            return prefix
    return None


def resolve_save_path(save_path: str) -> str:
    """A SavedModel directory means its ``variables/variables`` checkpoint (rule O-CK-5);
    anything else is returned unchanged."""
    path = os.fspath(save_path)
    if is_url(path):
        store, key = resolve_url(path)
        variables = posixpath.join(key, *SAVED_MODEL_VARIABLES)
        if not store.exists(key + ".index") and store.exists(variables + ".index"):
            return posixpath.join(path, *SAVED_MODEL_VARIABLES)
        return path
    if os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, name)) for name in SAVED_MODEL_FILES
    ):
        return os.path.join(path, *SAVED_MODEL_VARIABLES)
    return path


def resolve_checkpoint_path(ckpt_dir_or_file: str) -> str:
    """A directory means its latest checkpoint, or for a SavedModel directory its
    ``variables/variables``; an archive means its checkpoint as ``ARCHIVE::PREFIX``;
    anything else is a prefix."""
    path = os.fspath(ckpt_dir_or_file)
    if is_url(path):
        return _resolve_url(path)
    if os.path.isdir(path):
        from .state import latest_checkpoint

        latest = latest_checkpoint(path)
        if latest is not None:
            return latest
        variables = os.path.join(path, *SAVED_MODEL_VARIABLES)
        if os.path.isfile(variables + ".index"):
            return variables
        raise NotFoundError(
            f"Couldn't find 'checkpoint' file or checkpoints in given directory {path}",
            path=path,
        )
    split = split_archive_path(path)
    if split is not None:
        from ..archive.reader import ArchiveReader

        with ArchiveReader(split[0]) as reader:
            return member_path(split[0], archive_prefix(reader, split[1]))
    return path


def _resolve_url(path: str) -> str:
    """:func:`resolve_checkpoint_path` for a URL: a prefix if its index is there, else a
    directory's latest checkpoint or SavedModel variables (rule S-SI-5)."""
    from .state import latest_checkpoint

    store, key = resolve_url(path)
    if store.exists(key + ".index"):
        return path
    latest = latest_checkpoint(path)
    if latest is not None:
        return latest
    if store.exists(posixpath.join(key, *SAVED_MODEL_VARIABLES) + ".index"):
        return posixpath.join(path, *SAVED_MODEL_VARIABLES)
    raise NotFoundError(
        f"no checkpoint at {path}: neither {path}.index nor a 'checkpoint' file naming one",
        path=path,
    )


def load_checkpoint(
    ckpt_dir_or_file: str, *, mmap: bool = False, member: str | None = None
) -> CheckpointReader:
    """Open a checkpoint given its prefix, a directory with a ``checkpoint`` file, a
    SavedModel directory, or an archive (``member`` picks a prefix or directory in it)."""
    path = os.fspath(ckpt_dir_or_file)
    split = split_archive_path(path)
    if member is not None:
        if split is None or split[1] is not None:
            raise InvalidArgumentError(
                "member= needs the path of an archive (without '::MEMBER')", path=path
            )
        path = member_path(path, member)
    if split is not None:
        return CheckpointReader(path, mmap=mmap)  # resolved inside the archive, opened once
    return CheckpointReader(resolve_checkpoint_path(path), mmap=mmap)


def list_variables(ckpt_dir_or_file: str) -> list[tuple[str, list[int]]]:
    """Sorted ``(name, shape)`` pairs of every tensor in the checkpoint."""
    with load_checkpoint(ckpt_dir_or_file) as reader:
        shapes = reader.get_variable_to_shape_map()
    return [(name, shapes[name]) for name in sorted(shapes)]

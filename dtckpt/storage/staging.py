"""Single files and whole directories on a store, through local temporaries (rule S-SI-7).

::

    open_any("s3://b/model.safetensors")   GET in parallel ranges -> an unlinked local
                                           temporary file -> its descriptor
    output_any("s3://b/out.npz")           the block writes a local temporary; on success
                                           it is uploaded as one object (S-SI-1)
    staged_tree("s3://b/run")              the objects of a prefix or directory, copied
                                           into a local temporary directory

What reads a file by descriptor (``.npz`` members through ``zipfile``,
``.safetensors``, archives) or writes one from start to end (the same formats,
``pack``) works on a URL through these: the local code runs unchanged on a local
copy. Local paths pass straight through to :func:`~dtckpt.storage.inputs.open_input`
and :func:`~dtckpt.storage.durable.output_file`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import NotFoundError
from .durable import output_file
from .inputs import open_input
from .urls import is_url, resolve

__all__ = ["open_any", "output_any", "staged_tree", "upload_file", "download_object"]

#: Bytes per request when an object is copied to or from a local file.
COPY_PIECE = 16 << 20


def download_object(url: str, out_fd: int) -> int:
    """Copy the object ``url`` into the open file ``out_fd``; its size."""
    store, key = resolve(url)
    reader = store.open_reader(key)
    try:
        buffer = bytearray(min(COPY_PIECE * 4, max(reader.size, 1)))
        view = memoryview(buffer)
        for start in range(0, reader.size, len(buffer)):
            n = min(len(buffer), reader.size - start)
            reader.read_into(view[:n], start)
            done = 0
            while done < n:
                done += os.write(out_fd, view[done:n])
        return reader.size
    finally:
        reader.close()


def open_any(path: str, *, what: str = "a regular file") -> int:
    """A read-only descriptor of ``path``: the file itself (rule H-SP-1), or for a URL an
    unlinked local copy of the object, gone when the descriptor is closed."""
    if not is_url(path):
        return open_input(path, what=what)
    fd, name = tempfile.mkstemp(prefix="dtckpt-object-")
    try:
        os.unlink(name)
        download_object(path, fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def upload_file(local: str, url: str) -> None:
    """Write the local file ``local`` as the object ``url``, visible once complete (S-SI-1)."""
    store, key = resolve(url)
    writer = store.open_writer(key)
    try:
        with open(local, "rb") as source:
            while piece := source.read(COPY_PIECE):
                writer.write(piece)
        writer.commit()
    except BaseException:
        writer.abort()
        raise


@contextmanager
def output_any(path: str) -> Iterator[str]:
    """:func:`~dtckpt.storage.durable.output_file` for a local path; for a URL, a local
    temporary path uploaded as the object when the block succeeds (rule S-SI-7)."""
    if not is_url(path):
        with output_file(path) as temporary:
            yield temporary
        return
    directory = tempfile.mkdtemp(prefix="dtckpt-upload-")
    try:
        temporary = os.path.join(directory, path.rstrip("/").rpartition("/")[2] or "object")
        yield temporary
        upload_file(temporary, path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def staged_tree(url: str) -> Iterator[str]:
    """A local copy of the checkpoint at ``url``: the prefix's ``.index`` and data objects
    when ``url.index`` exists, else every object under the directory ``url``. Yields the
    local path that means the same (a prefix, or a directory)."""
    store, key = resolve(url)
    directory = tempfile.mkdtemp(prefix="dtckpt-download-")
    try:
        base = key.rstrip("/").rpartition("/")[2] or "root"
        local = os.path.join(directory, base)
        if store.exists(key + ".index"):
            parent = store.parent(key)
            for name in store.list(parent):
                if name == base + ".index" or name.startswith(base + ".data-"):
                    _fetch(store.url(store.join(parent, name)), os.path.join(directory, name))
        else:
            found = _fetch_tree(url, local)
            if not found:
                raise NotFoundError(
                    "no checkpoint here: no prefix with a .index object, and no objects "
                    "under it as a directory",
                    path=url,
                )
        yield local
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _fetch(url: str, local: str) -> None:
    os.makedirs(os.path.dirname(local), exist_ok=True)
    fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        download_object(url, fd)
    finally:
        os.close(fd)


def _fetch_tree(url: str, local: str) -> int:
    """Every object under the directory ``url``, recursively; how many."""
    store, key = resolve(url)
    count = 0
    pending = [(key, local)]
    while pending:  # an explicit stack: depth follows the bucket, never the Python stack
        directory, target = pending.pop()
        for name in store.list(directory):
            _fetch(store.url(store.join(directory, name)), os.path.join(target, name))
            count += 1
        for sub in store.list_directories(directory):
            pending.append((store.join(directory, sub), os.path.join(target, sub)))
    return count

"""Every exception dtckpt raises, and nothing else.

Each class carries TensorFlow's name for the condition where TensorFlow has one
(``NotFoundError``, ``DataLossError``, ``InvalidArgumentError`` ...) and also
derives from the builtin exception a Python user would reach for, so both
``except dtckpt.errors.DataLossError`` and ``except OSError`` work.

Messages say *where*: the file, the tensor key, the byte offset, and in a
multi-client save or restore the client it happened on. Low-level decoders only
know offsets inside the buffer they were given; the readers above them add the
file name and the base offset with :meth:`CheckpointError.located`.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = [
    "CheckpointError",
    "NotFoundError",
    "TensorNotFoundError",
    "DataLossError",
    "OutOfRangeError",
    "InvalidArgumentError",
    "UnimplementedError",
    "AlreadyExistsError",
    "FailedPreconditionError",
    "UntrackedObjectWarning",
    "DeadlineExceededError",
    "ResourceExhaustedError",
    "MemoryBudgetError",
    "PermissionDeniedError",
    "UnavailableError",
    "UnknownError",
    "MissingDependencyError",
    "ConditionalWriteConflict",
]

_E = TypeVar("_E", bound="CheckpointError")


class CheckpointError(Exception):
    """Base class of every dtckpt error.

    ``path``, ``key`` and ``offset`` are kept as attributes so that callers
    (and tests) can inspect the location without parsing the message;
    ``client`` is the client (process) a multi-client operation failed on.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | bytes | None = None,
        offset: int | None = None,
        client: int | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.key = key
        self.offset = offset
        self.client = client
        super().__init__(self._render())

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self._render()

    def _render(self) -> str:
        where = []
        if self.client is not None:
            where.append(f"client {self.client}")
        if self.path is not None:
            where.append(str(self.path))
        if self.key is not None:
            where.append(f"key {_show_key(self.key)}")
        if self.offset is not None:
            where.append(f"byte offset {self.offset}")
        return f"{': '.join(where)}: {self.message}" if where else self.message

    def located(
        self: _E,
        *,
        path: str | None = None,
        key: str | bytes | None = None,
        base_offset: int = 0,
    ) -> _E:
        """A copy of this error with the location filled in.

        Fields already set are kept (the innermost code knows best); an offset
        relative to a buffer is shifted by ``base_offset`` to become a file offset.
        """
        offset = None if self.offset is None else self.offset + base_offset
        return type(self)(
            self.message,
            path=self.path if self.path is not None else path,
            key=self.key if self.key is not None else key,
            offset=offset,
            client=self.client,
        )

    def __reduce__(self) -> tuple[object, ...]:  # keep keyword-only fields across pickling
        return (
            _rebuild,
            (type(self), self.message, self.path, self.key, self.offset, self.client),
        )


def _rebuild(
    cls: type[CheckpointError],
    message: str,
    path: str | None,
    key: str | bytes | None,
    offset: int | None,
    client: int | None = None,
) -> CheckpointError:
    return cls(message, path=path, key=key, offset=offset, client=client)


def _show_key(key: str | bytes) -> str:
    if isinstance(key, bytes):
        try:
            text = key.decode("utf-8")
        except UnicodeDecodeError:
            return repr(key)
        if text.isprintable():
            return repr(text)
        return repr(key)
    return repr(key)


class NotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint, file or tensor that was asked for does not exist."""


class TensorNotFoundError(NotFoundError, KeyError):
    """A tensor key that is not in the checkpoint (also a ``KeyError``)."""


class DataLossError(CheckpointError, OSError):
    """Stored bytes are damaged: bad checksum, bad magic, undecodable record."""


class OutOfRangeError(DataLossError):
    """A file is shorter than its metadata says (a truncated data shard)."""


class InvalidArgumentError(CheckpointError, ValueError):
    """The caller asked for something impossible (bad slice spec, dtype mismatch...)."""


class UnimplementedError(CheckpointError, NotImplementedError):
    """Valid input that dtckpt does not support (e.g. Snappy-compressed index blocks)."""


class AlreadyExistsError(CheckpointError, FileExistsError):
    """A key or file that must be unique is already there."""


class FailedPreconditionError(CheckpointError, RuntimeError):
    """An object was used in a state that does not allow the operation."""


class UntrackedObjectWarning(UserWarning):
    """A save found a trackable object where checkpoints do not look (inside a set, a
    subclass of list or dict, a dataclass...): it is not saved, and TensorFlow would
    drop it without a word."""


class DeadlineExceededError(CheckpointError, TimeoutError):
    """A client did not reach a collective step before its deadline (TF's ``DEADLINE_EXCEEDED``)."""


class ResourceExhaustedError(CheckpointError, OSError):
    """Out of disk space, quota or memory (TF's ``RESOURCE_EXHAUSTED``: ``ENOSPC``...)."""


class MemoryBudgetError(ResourceExhaustedError):
    """A save or restore would need more memory than ``experimental_memory_budget``.

    Raised before anything is read or written (rule R-MB-1); ``needed`` is the smallest
    budget under which the same work runs, ``budget`` the one given.
    """

    def __init__(
        self,
        message: str,
        *,
        needed: int | None = None,
        budget: int | None = None,
        path: str | None = None,
        key: str | bytes | None = None,
        offset: int | None = None,
        client: int | None = None,
    ) -> None:
        self.needed = needed
        self.budget = budget
        super().__init__(message, path=path, key=key, offset=offset, client=client)

    def located(
        self, *, path: str | None = None, key: str | bytes | None = None, base_offset: int = 0
    ) -> MemoryBudgetError:
        located = super().located(path=path, key=key, base_offset=base_offset)
        located.needed, located.budget = self.needed, self.budget
        return located

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_budget,
            (self.message, self.needed, self.budget, self.path, self.key, self.client),
        )


def _rebuild_budget(
    message: str,
    needed: int | None,
    budget: int | None,
    path: str | None,
    key: str | bytes | None,
    client: int | None,
) -> MemoryBudgetError:
    return MemoryBudgetError(
        message, needed=needed, budget=budget, path=path, key=key, client=client
    )


class PermissionDeniedError(CheckpointError, PermissionError):
    """The file system refused access (TF's ``PERMISSION_DENIED``: ``EACCES``, ``EROFS``...)."""


class UnavailableError(CheckpointError, OSError):
    """Any other operating-system failure of a file or a peer (``EIO``, a lost connection)."""


class UnknownError(CheckpointError, RuntimeError):
    """A failure that is not an operating-system error, reported by another client."""


class MissingDependencyError(CheckpointError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


class ConditionalWriteConflict(FailedPreconditionError):
    """A conditional write lost its condition (HTTP 412, TF's ``FAILED_PRECONDITION``): the
    object it was to create already exists, or the one it was to replace changed since it
    was read. Another writer got there first."""

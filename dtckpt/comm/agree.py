"""Failures that every client shares: one typed error, naming the client it came from (P-ER-*).

::

    client 2: OSError(ENOSPC) while writing
        -> ErrorRecord(client=2, kind="ResourceExhaustedError", errno=28, ...)
        -> sent to the root with the other clients' results, then to every client
        -> every client raises ResourceExhaustedError("client 2: <file>: No space left ...")

An exception becomes a :mod:`dtckpt.errors` class by one table (rule P-ER-1):
dtckpt's own errors keep their class; ``OSError`` goes by its ``errno``; any
other exception is :class:`~dtckpt.errors.UnknownError` carrying its type name.
The record pickles (plain fields only), so it can cross any communicator.

:func:`run_on_root` and :func:`scatter_from_root` are the one-collective
patterns built on it: the root computes, and every member gets the result or
the root's error.
"""

from __future__ import annotations

import errno as errno_codes
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import errors
from ..errors import CheckpointError
from .base import Communicator

__all__ = [
    "ErrorRecord",
    "Reply",
    "as_checkpoint_error",
    "client_of",
    "record_of",
    "first_failure",
    "raise_first",
    "run_on_root",
    "scatter_from_root",
]

_T = TypeVar("_T")

# Rule P-ER-1: operating-system errors by errno (TensorFlow's ErrnoToCode, where it has one).
_BY_ERRNO: dict[int, type[CheckpointError]] = {}
for _name, _cls in (
    ("ENOSPC", errors.ResourceExhaustedError),
    ("EDQUOT", errors.ResourceExhaustedError),
    ("EFBIG", errors.ResourceExhaustedError),
    ("ENOMEM", errors.ResourceExhaustedError),
    ("EMFILE", errors.ResourceExhaustedError),
    ("ENFILE", errors.ResourceExhaustedError),
    ("EACCES", errors.PermissionDeniedError),
    ("EPERM", errors.PermissionDeniedError),
    ("EROFS", errors.PermissionDeniedError),
    ("ENOENT", errors.NotFoundError),
    ("EEXIST", errors.AlreadyExistsError),
    ("ETIMEDOUT", errors.DeadlineExceededError),
):
    _code = getattr(errno_codes, _name, None)
    if _code is not None:
        _BY_ERRNO[_code] = _cls


@dataclass(frozen=True)
class ErrorRecord:
    """A failure on one client, in plain fields that pickle."""

    client: int | None
    kind: str
    message: str
    path: str | None = None
    key: str | bytes | None = None
    offset: int | None = None
    errno: int | None = None

    def to_exception(self) -> CheckpointError:
        """The typed error this record stands for (rule P-ER-1)."""
        cls = getattr(errors, self.kind, None)
        if not (isinstance(cls, type) and issubclass(cls, CheckpointError)):
            cls = errors.UnknownError
        exc = cls(
            self.message, path=self.path, key=self.key, offset=self.offset, client=self.client
        )
        if self.errno is not None and isinstance(exc, OSError):
            exc.errno = self.errno
        return exc


@dataclass(frozen=True)
class Reply:
    """What a collective step carries: a value, or the failure that replaces it."""

    value: Any = None
    error: ErrorRecord | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error.to_exception()
        return self.value


def record_of(exc: BaseException, client: int | None) -> ErrorRecord:
    """``exc`` as a record, classified by rule P-ER-1; ``client`` is where it happened."""
    if isinstance(exc, CheckpointError):
        return ErrorRecord(
            exc.client if exc.client is not None else client,
            type(exc).__name__,
            exc.message,
            exc.path,
            exc.key,
            exc.offset,
            getattr(exc, "errno", None),
        )
    if isinstance(exc, OSError):
        cls = _BY_ERRNO.get(exc.errno or -1, errors.UnavailableError)
        message = exc.strerror or str(exc) or type(exc).__name__
        path = exc.filename if isinstance(exc.filename, str) else None
        return ErrorRecord(client, cls.__name__, message, path, errno=exc.errno)
    if isinstance(exc, MemoryError):
        return ErrorRecord(client, "ResourceExhaustedError", f"out of memory ({exc})")
    text = str(exc)
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return ErrorRecord(client, "UnknownError", message)


def as_checkpoint_error(exc: BaseException, client: int | None) -> CheckpointError:
    """``exc`` as the :mod:`dtckpt.errors` exception every client raises for it."""
    if isinstance(exc, CheckpointError) and (exc.client is not None or client is None):
        return exc
    return record_of(exc, client).to_exception()


def first_failure(records: Sequence[ErrorRecord | None]) -> ErrorRecord | None:
    """The failure of the lowest client, naming the others that failed too (rule P-ER-2)."""
    failed = sorted(
        (r for r in records if r is not None), key=lambda r: -1 if r.client is None else r.client
    )
    if not failed:
        return None
    first = failed[0]
    others = sorted({r.client for r in failed[1:] if r.client is not None} - {first.client})
    if not others:
        return first
    plural = "s" if len(others) > 1 else ""
    suffix = f" (client{plural} {', '.join(map(str, others))} failed too)"
    return ErrorRecord(
        first.client,
        first.kind,
        first.message + suffix,
        first.path,
        first.key,
        first.offset,
        first.errno,
    )


def raise_first(records: Sequence[ErrorRecord | None]) -> None:
    """Raise the error of the lowest client that failed, if any did (rule P-ER-2)."""
    first = first_failure(records)
    if first is not None:
        raise first.to_exception()


def client_of(comm: Communicator) -> int | None:
    """The ``client`` a local error names: the rank, or ``None`` for a lone process."""
    return comm.rank if comm.size > 1 else None


def _alone(compute: Callable[[], _T]) -> _T:
    """``compute()`` of a lone process, its failure typed as it would be for a group."""
    try:
        return compute()
    except Exception as exc:  # rule P-ER-1
        typed = as_checkpoint_error(exc, None)
        if typed is exc:
            raise
        raise typed from exc


def run_on_root(comm: Communicator, compute: Callable[[], _T], *, timeout: float, what: str) -> _T:
    """``compute()`` on the root; its result, or its error naming the root, everywhere.

    One collective (a broadcast). With one member, just ``compute()``.
    """
    if comm.size == 1:
        return _alone(compute)
    reply, failure = Reply(), None
    if comm.rank == 0:
        try:
            reply = Reply(compute())
        except Exception as exc:  # every failure is shared: rule P-ER-2
            reply, failure = Reply(error=record_of(exc, 0)), exc
    got: Reply = comm.bcast(reply, timeout=timeout, what=what)
    if failure is not None and got.error is not None:
        raise got.error.to_exception() from failure
    result: _T = got.unwrap()
    return result


def scatter_from_root(
    comm: Communicator,
    compute: Callable[[], Sequence[Any]],
    *,
    timeout: float,
    what: str,
) -> Any:
    """``compute()`` on the root gives one value per member; member ``r`` gets the ``r``-th.

    One collective (a scatter); a failure of ``compute`` reaches every member
    as the same typed error naming the root.
    """
    if comm.size == 1:
        return _alone(compute)[0]
    replies: list[Reply] | None = None
    failure = None
    if comm.rank == 0:
        try:
            values = list(compute())
            if len(values) != comm.size:
                raise errors.InvalidArgumentError(
                    f"{what}: {len(values)} values for {comm.size} clients"
                )
            replies = [Reply(v) for v in values]
        except Exception as exc:  # rule P-ER-2
            replies, failure = [Reply(error=record_of(exc, 0))] * comm.size, exc
    got: Reply = comm.scatter(replies, timeout=timeout, what=what)
    if failure is not None and got.error is not None:
        raise got.error.to_exception() from failure
    return got.unwrap()

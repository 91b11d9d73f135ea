"""One table turns any failure into the typed error every client raises (rules P-ER-1, P-ER-2)."""

from __future__ import annotations

import errno
import pickle

import pytest

from dtckpt import errors
from dtckpt.comm import ErrorRecord, as_checkpoint_error
from dtckpt.comm.agree import raise_first, record_of


@pytest.mark.parametrize(
    "code, cls, builtin",
    [
        (errno.ENOSPC, errors.ResourceExhaustedError, OSError),
        (errno.EDQUOT, errors.ResourceExhaustedError, OSError),
        (errno.EACCES, errors.PermissionDeniedError, PermissionError),
        (errno.EROFS, errors.PermissionDeniedError, PermissionError),
        (errno.ENOENT, errors.NotFoundError, FileNotFoundError),
        (errno.EEXIST, errors.AlreadyExistsError, FileExistsError),
        (errno.EIO, errors.UnavailableError, OSError),
    ],
)
def test_os_errors_by_errno(code: int, cls: type, builtin: type) -> None:
    typed = as_checkpoint_error(OSError(code, "it failed", "/d/f.data-00000-of-00001"), 3)
    assert type(typed) is cls and isinstance(typed, builtin)
    assert typed.errno == code and typed.client == 3 and typed.path == "/d/f.data-00000-of-00001"
    assert str(typed) == "client 3: /d/f.data-00000-of-00001: it failed"


def test_dtckpt_errors_keep_their_class_and_location() -> None:
    original = errors.DataLossError("bad checksum", path="p.index", key=b"w", offset=12)
    record = record_of(original, 1)
    rebuilt = pickle.loads(pickle.dumps(record)).to_exception()
    assert type(rebuilt) is errors.DataLossError
    assert (rebuilt.path, rebuilt.key, rebuilt.offset, rebuilt.client) == ("p.index", b"w", 12, 1)
    # An error that already names its client keeps it.
    assert record_of(errors.DeadlineExceededError("late", client=4), 0).client == 4


def test_other_exceptions_are_unknown_errors_with_their_type() -> None:
    typed = as_checkpoint_error(ValueError("bad value"), 2)
    assert type(typed) is errors.UnknownError and str(typed) == "client 2: ValueError: bad value"
    assert type(as_checkpoint_error(MemoryError(), 0)) is errors.ResourceExhaustedError
    # A lone process names no client.
    assert str(as_checkpoint_error(KeyError("k"), None)) == "KeyError: 'k'"
    assert ErrorRecord(None, "NoSuchClass", "m").to_exception().__class__ is errors.UnknownError


def test_the_lowest_failed_client_is_raised_and_the_others_named() -> None:
    records = [
        None,
        ErrorRecord(3, "PermissionDeniedError", "no", errno=errno.EACCES),
        ErrorRecord(1, "ResourceExhaustedError", "full", errno=errno.ENOSPC),
    ]
    with pytest.raises(errors.ResourceExhaustedError) as caught:
        raise_first(records)
    assert caught.value.client == 1 and caught.value.errno == errno.ENOSPC
    assert str(caught.value) == "client 1: full (client 3 failed too)"
    raise_first([None, None])  # nothing failed: nothing raised

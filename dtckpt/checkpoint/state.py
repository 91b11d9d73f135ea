"""The ``checkpoint`` state file: a ``CheckpointState`` proto in text format.

::

    model_checkpoint_path: "ckpt-3"
    all_model_checkpoint_paths: "ckpt-2"
    all_model_checkpoint_paths: "ckpt-3"
    all_model_checkpoint_timestamps: 1795497185.4494793
    last_preserved_timestamp: 1795497184.4300873

Fields (``tensorflow/python/training/checkpoint_state.proto``, rule C-ST-1):
1 ``model_checkpoint_path``, 2 ``all_model_checkpoint_paths`` (oldest first),
3 ``all_model_checkpoint_timestamps``, 4 ``last_preserved_timestamp``.
Relative paths are relative to the directory holding the file. Strings use
protobuf's C-style escapes (``\\"``, ``\\\\``, octal ``\\ooo`` for other bytes).

The file is replaced whole: the new text goes to ``checkpoint.tmp<hex>``, is
fsynced, and is renamed over ``checkpoint`` under the directory lock, and the
directory is fsynced after the rename (rules C-ST-3, S-ST-1). In an object
store (a URL) the file is replaced only if it did not change since it was read
(``If-Match``), re-read and retried on a conflict (rule S-OS-4).
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from dataclasses import dataclass, field

from ..comm import world
from ..comm.agree import run_on_root
from ..errors import DataLossError, FailedPreconditionError, InvalidArgumentError, NotFoundError
from ..storage.durable import TemporaryFile, install
from ..storage.inputs import read_input
from ..storage.urls import is_url, resolve
from .options import COLLECTIVE_TIMEOUT

__all__ = [
    "update_checkpoint_state",
    "update_checkpoint_state_internal",
    "generate_checkpoint_state_proto",
    "write_checkpoint_state",
    "CheckpointState",
    "parse_checkpoint_state",
    "format_checkpoint_state",
    "get_checkpoint_state",
    "latest_checkpoint",
    "checkpoint_exists",
    "STATE_FILENAME",
]

STATE_FILENAME = "checkpoint"
_LOG = logging.getLogger("dtckpt")
_MAX_STATE_BYTES = 64 << 20


@dataclass
class CheckpointState:
    model_checkpoint_path: str = ""
    all_model_checkpoint_paths: list[str] = field(default_factory=list)
    all_model_checkpoint_timestamps: list[float] = field(default_factory=list)
    last_preserved_timestamp: float = 0.0


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*:\s*
        (?: "(?P<dq>(?:[^"\\\n]|\\.)*)" | '(?P<sq>(?:[^'\\\n]|\\.)*)'
          | (?P<num>[-+]?(?:inf(?:inity)?|nan|[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?
                        |\.[0-9]+(?:[eE][-+]?[0-9]+)?))(?P<fsuffix>f)?(?![A-Za-z0-9_.]) )
    )""",
    re.VERBOSE | re.IGNORECASE,
)
_SIMPLE_ESCAPES = {
    "n": 10,
    "r": 13,
    "t": 9,
    '"': 34,
    "'": 39,
    "\\": 92,
    "a": 7,
    "b": 8,
    "f": 12,
    "v": 11,
    "?": 63,
}


_OCTAL = re.compile(rb"[0-7]{1,3}")
_HEX = re.compile(rb"[0-9a-fA-F]{1,2}")
_REST_IS_BLANK = re.compile(r"\s*\Z")


def _unescape(text: str, where: int) -> str:
    out = bytearray()
    i = 0
    raw = text.encode("utf-8", errors="surrogateescape")  # the file was decoded that way
    while i < len(raw):
        byte = raw[i]
        if byte != 0x5C:
            out.append(byte)
            i += 1
            continue
        i += 1
        if i >= len(raw):
            raise DataLossError("dangling backslash in state file string", offset=where)
        ch = chr(raw[i])
        if ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
            i += 1
        elif ch in "01234567":
            digits = _OCTAL.match(raw, i)  # at i, not on a copy of the rest: stays linear
            assert digits is not None
            out.append(int(digits.group(), 8) & 0xFF)
            i += len(digits.group())
        elif ch in "xX":
            digits = _HEX.match(raw, i + 1)
            if digits is None:
                raise DataLossError("bad \\x escape in state file string", offset=where)
            out.append(int(digits.group(), 16))
            i += 1 + len(digits.group())
        else:
            raise DataLossError(f"unknown escape \\{ch} in state file string", offset=where)
    return out.decode("utf-8", errors="surrogateescape")


def _escape(text: str) -> str:
    """C-style escapes as TF's state files have them; valid UTF-8 stays as it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped raw bytes: octal escapes
        return "".join(_escape_byte(b) for b in text.encode("utf-8", errors="surrogateescape"))
    return "".join(_escape_byte(ord(ch)) if ord(ch) < 0x80 else ch for ch in text)


def _escape_byte(byte: int) -> str:
    simple = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x22: '\\"', 0x27: "\\'", 0x5C: "\\\\"}
    if byte in simple:
        return simple[byte]
    if byte < 0x20 or byte >= 0x7F:
        return f"\\{byte:03o}"
    return chr(byte)


def parse_checkpoint_state(text: str) -> CheckpointState:
    """Parse the text format; unknown fields are an error, as in protobuf."""
    state = CheckpointState()
    pos = 0
    while pos < len(text):
        if _REST_IS_BLANK.match(text, pos):  # at pos, no copy of the rest: parsing is linear
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise DataLossError("cannot parse checkpoint state text", offset=pos)
        pos = match.end()
        if match.group("comment") is not None:
            continue
        name = match.group("name")
        string = match.group("dq") if match.group("dq") is not None else match.group("sq")
        number = match.group("num")
        if name in ("model_checkpoint_path", "all_model_checkpoint_paths"):
            if string is None:
                raise DataLossError(f"{name} needs a quoted string", offset=match.start())
            value = _unescape(string, match.start())
            if name == "model_checkpoint_path":
                state.model_checkpoint_path = value
            else:
                state.all_model_checkpoint_paths.append(value)
        elif name in ("all_model_checkpoint_timestamps", "last_preserved_timestamp"):
            if number is None:
                raise DataLossError(f"{name} needs a number", offset=match.start())
            seconds = float(number)  # the grammar admits only what float() parses
            if name == "last_preserved_timestamp":
                state.last_preserved_timestamp = seconds
            else:
                state.all_model_checkpoint_timestamps.append(seconds)
        else:
            raise DataLossError(f"unknown field {name!r} in checkpoint state", offset=match.start())
    return state


def format_checkpoint_state(state: CheckpointState) -> str:
    """Text format as ``text_format.MessageToString`` writes it (fields in number order)."""
    lines = []
    if state.model_checkpoint_path:
        lines.append(f'model_checkpoint_path: "{_escape(state.model_checkpoint_path)}"')
    lines.extend(
        f'all_model_checkpoint_paths: "{_escape(p)}"' for p in state.all_model_checkpoint_paths
    )
    lines.extend(
        f"all_model_checkpoint_timestamps: {t!r}" for t in state.all_model_checkpoint_timestamps
    )
    if state.last_preserved_timestamp:
        lines.append(f"last_preserved_timestamp: {state.last_preserved_timestamp!r}")
    return "".join(line + "\n" for line in lines)


def get_checkpoint_state(
    checkpoint_dir: str, latest_filename: str | None = None
) -> CheckpointState | None:
    """Read ``checkpoint_dir/checkpoint``; ``None`` if it is missing or unreadable (rule C-ST-2).

    Relative paths come back joined with ``checkpoint_dir``, as TF does.
    """
    checkpoint_dir = os.fspath(checkpoint_dir)
    path = join_path(checkpoint_dir, latest_filename or STATE_FILENAME)
    if is_url(path):
        store, key = resolve(path)
        try:
            raw = store.read(key, limit=_MAX_STATE_BYTES)
        except (DataLossError, NotFoundError) as exc:
            _LOG.debug("Ignoring the checkpoint state file: %s", exc)
            return None
    elif not os.path.lexists(path):
        return None
    else:
        try:
            # Rule H-SP-1: a FIFO or device named ``checkpoint`` is refused by its type, so
            # that neither a manager nor latest_checkpoint blocks on it or reads it forever.
            raw = read_input(path, what="a state file", limit=_MAX_STATE_BYTES)
        except (DataLossError, NotFoundError) as exc:
            _LOG.debug("Ignoring the checkpoint state file: %s", exc)  # unreadable (C-ST-2)
            return None
    try:
        state = parse_checkpoint_state(raw.decode("utf-8", errors="surrogateescape"))
    except DataLossError:
        return None
    if not state.model_checkpoint_path:
        raise InvalidArgumentError(
            f"Invalid checkpoint state loaded from {checkpoint_dir}", path=path
        )

    def absolute(p: str) -> str:
        return p if os.path.isabs(p) or is_url(p) else join_path(checkpoint_dir, p)

    state.model_checkpoint_path = absolute(state.model_checkpoint_path)
    state.all_model_checkpoint_paths = [absolute(p) for p in state.all_model_checkpoint_paths]
    return state


def checkpoint_exists(prefix: str) -> bool:
    """Whether a V2 (``prefix.index``) or V1 (``prefix`` itself) checkpoint is there."""
    if is_url(prefix):
        store, key = resolve(prefix)
        return store.exists(key + ".index")
    return os.path.isfile(prefix + ".index") or os.path.isfile(prefix)


def join_path(directory: str, name: str) -> str:
    """``directory/name`` for a local directory or a URL (whose separator is always ``/``)."""
    if is_url(directory):
        return f"{directory.rstrip('/')}/{name}"
    return os.path.join(directory, name)


def relative_to(path: str, directory: str) -> str:
    """``path`` relative to the URL ``directory`` when it lies inside it, else unchanged."""
    head = directory.rstrip("/") + "/"
    return path[len(head) :] if path.startswith(head) else path


def latest_checkpoint(checkpoint_dir: str, latest_filename: str | None = None) -> str | None:
    """The newest checkpoint prefix named by the state file, if its files exist (rule C-ST-2).

    With several clients, the root reads the state file and every client gets
    its answer (one collective, rule P-RS-3), so that all restore the same one.
    """

    def read() -> str | None:
        state = get_checkpoint_state(checkpoint_dir, latest_filename)
        if state is not None and checkpoint_exists(state.model_checkpoint_path):
            return state.model_checkpoint_path
        return None

    return run_on_root(world(), read, timeout=COLLECTIVE_TIMEOUT, what="latest_checkpoint")


def write_checkpoint_state(
    save_dir: str,
    state: CheckpointState,
    latest_filename: str | None = None,
    *,
    fsync: bool = True,
) -> str:
    """Replace ``save_dir/checkpoint`` atomically: a temporary file, then a rename.

    Rules C-ST-3 and S-ST-1: the temporary is fsynced before the rename and the
    directory after it, unless ``fsync=False``. Once renamed, the new file
    stays even if the directory fsync fails (it names a complete checkpoint).
    """
    save_dir = os.fspath(save_dir)
    path = join_path(save_dir, latest_filename or STATE_FILENAME)
    if is_url(path):
        text = format_checkpoint_state(state).encode("utf-8", "surrogateescape")
        from ..storage.objects import replace_with_retry

        store, key = resolve(path)
        replace_with_retry(store, key, lambda _: text)  # atomic; the last writer wins
        return path
    temporary = TemporaryFile(f"{path}.tmp{uuid.uuid4().hex}")
    try:
        temporary.file.write(format_checkpoint_state(state).encode("utf-8", "surrogateescape"))
        temporary.sync(fsync)
        install(
            [(temporary.path, path)],
            directory=save_dir or os.curdir,
            fsync=fsync,
            temporaries=(temporary,),
            keep_on_failure=True,
        )
    except BaseException:
        temporary.discard()
        raise
    return path


def update_checkpoint_state(
    save_dir: str,
    model_checkpoint_path: str,
    all_model_checkpoint_paths: list[str] | None = None,
    all_model_checkpoint_timestamps: list[float] | None = None,
    last_preserved_timestamp: float | None = None,
    save_relative_paths: bool = True,
    *,
    fsync: bool = True,
) -> None:
    """Record the newest checkpoint in ``save_dir``'s state file, as TF's
    ``update_checkpoint_state_internal`` does (relative paths by default).

    ``fsync=False`` (a dtckpt keyword, rule S-AT-3) skips the fsyncs."""
    save_dir = os.fspath(save_dir)

    def relative(p: str) -> str:
        if is_url(save_dir):
            return relative_to(p, save_dir)
        # TF relativizes absolute paths when asked to, and relative paths whenever the
        # directory itself is relative ("out/ckpt-1" in "out" is written "ckpt-1").
        if os.path.isabs(p):
            return os.path.relpath(p, save_dir or ".") if save_relative_paths else p
        return p if os.path.isabs(save_dir) else os.path.relpath(p, save_dir or ".")

    paths = list(all_model_checkpoint_paths or [])
    if model_checkpoint_path not in paths:
        paths.append(model_checkpoint_path)
    state_path = join_path(save_dir, STATE_FILENAME)
    if model_checkpoint_path == state_path or (
        not is_url(state_path)
        and os.path.abspath(model_checkpoint_path) == os.path.abspath(state_path)
    ):
        raise InvalidArgumentError(
            f"Save path '{model_checkpoint_path}' conflicts with path used for checkpoint state."
        )
    state = CheckpointState(
        relative(model_checkpoint_path),
        [relative(p) for p in paths],
        list(all_model_checkpoint_timestamps or []),
        last_preserved_timestamp or 0.0,
    )
    write_checkpoint_state(save_dir, state, fsync=fsync)


def generate_checkpoint_state_proto(
    save_dir: str,
    model_checkpoint_path: str,
    all_model_checkpoint_paths: list[str] | None = None,
    all_model_checkpoint_timestamps: list[float] | None = None,
    last_preserved_timestamp: float | None = None,
) -> CheckpointState:
    """The ``CheckpointState`` TensorFlow's ``generate_checkpoint_state_proto`` builds.

    ``model_checkpoint_path`` is appended to the list unless it is already last; with
    a relative ``save_dir``, relative paths are made relative to it (absolute ones are
    kept). Timestamps, when given, must pair up with the paths (``InvalidArgumentError``,
    a ``ValueError``). As in TensorFlow, a list passed as ``all_model_checkpoint_paths``
    is the one updated (and returned in the state).
    """
    save_dir = os.fspath(save_dir)
    paths = all_model_checkpoint_paths if all_model_checkpoint_paths is not None else []
    if not paths or paths[-1] != model_checkpoint_path:
        paths.append(model_checkpoint_path)
    timestamps = list(all_model_checkpoint_timestamps or [])
    if timestamps and len(timestamps) != len(paths):
        raise InvalidArgumentError(
            "Checkpoint timestamps, if provided, must match checkpoint paths (got paths "
            f"{paths} and timestamps {timestamps})"
        )
    if not os.path.isabs(save_dir):
        if not os.path.isabs(model_checkpoint_path):
            model_checkpoint_path = os.path.relpath(model_checkpoint_path, save_dir)
        for i, p in enumerate(paths):
            if not os.path.isabs(p):
                paths[i] = os.path.relpath(p, save_dir)
    return CheckpointState(
        model_checkpoint_path, paths, timestamps, last_preserved_timestamp or 0.0
    )


def update_checkpoint_state_internal(
    save_dir: str,
    model_checkpoint_path: str,
    all_model_checkpoint_paths: list[str] | None = None,
    latest_filename: str | None = None,
    save_relative_paths: bool = False,
    all_model_checkpoint_timestamps: list[float] | None = None,
    last_preserved_timestamp: float | None = None,
    *,
    fsync: bool = True,
) -> None:
    """TensorFlow's ``update_checkpoint_state_internal``, with its arguments and defaults.

    With ``save_relative_paths`` absolute paths are written relative to ``save_dir``;
    otherwise paths go through :func:`generate_checkpoint_state_proto` as given. A
    model path equal to the state file's own path is a ``FailedPreconditionError``
    (TensorFlow: ``RuntimeError``). The file is replaced atomically (C-ST-3).
    """
    save_dir = os.fspath(save_dir)
    state_path = os.path.join(save_dir, latest_filename or STATE_FILENAME)
    paths = list(all_model_checkpoint_paths or [])
    if save_relative_paths:

        def relative(p: str) -> str:
            return os.path.relpath(p, save_dir) if os.path.isabs(p) else p

        model_checkpoint_path = relative(model_checkpoint_path)
        paths = [relative(p) for p in paths]
    state = generate_checkpoint_state_proto(
        save_dir,
        model_checkpoint_path,
        paths,
        all_model_checkpoint_timestamps,
        last_preserved_timestamp,
    )
    if state_path == state.model_checkpoint_path:
        raise FailedPreconditionError(
            f"Save path '{model_checkpoint_path}' conflicts with path used for checkpoint "
            "state.  Please use a different save path."
        )
    write_checkpoint_state(save_dir, state, latest_filename, fsync=fsync)


def merge_into_state(
    save_dir: str,
    latest: str,
    paths: list[str],
    timestamps: list[float],
    last_preserved_timestamp: float,
    forgotten: set[str],
) -> CheckpointState:
    """Rule S-OS-4: record a manager's checkpoints in the state file of the URL
    ``save_dir`` without losing what another manager recorded meanwhile.

    The file is read, and its entries that this manager neither lists nor has
    ``forgotten`` (deleted, or dropped from its set) are kept beside this manager's, all
    ordered by timestamp; the newest checkpoint is the latest. The result replaces the
    file only if it did not change since it was read; otherwise all of it is done again.
    Returns the state written (absolute paths).
    """
    from ..storage.objects import replace_with_retry

    store, key = resolve(join_path(save_dir, STATE_FILENAME))
    result: list[CheckpointState] = []

    def update(raw: bytes | None) -> bytes:
        stamped = dict(zip(paths, timestamps, strict=True))
        preserved = last_preserved_timestamp
        newest = (stamped.get(latest, float("inf")), latest)
        if raw is not None:
            try:
                theirs = parse_checkpoint_state(raw.decode("utf-8", errors="surrogateescape"))
            except DataLossError:
                theirs = CheckpointState()
            others = zip(  # paths without timestamps are dropped, as C-MG-1 says
                theirs.all_model_checkpoint_paths,
                theirs.all_model_checkpoint_timestamps,
                strict=False,
            )
            for path, stamp in others:
                path = join_path(save_dir, path) if not is_url(path) else path
                if path not in stamped and path not in forgotten:
                    stamped[path] = stamp
                    newest = max(newest, (stamp, path))
            preserved = max(preserved, theirs.last_preserved_timestamp)
        ordered = sorted(stamped.items(), key=lambda item: item[1])
        state = CheckpointState(
            newest[1],
            [path for path, _ in ordered],
            [stamp for _, stamp in ordered],
            preserved,
        )
        result[:] = [state]
        relative = CheckpointState(
            relative_to(state.model_checkpoint_path, save_dir),
            [relative_to(p, save_dir) for p in state.all_model_checkpoint_paths],
            state.all_model_checkpoint_timestamps,
            state.last_preserved_timestamp,
        )
        return format_checkpoint_state(relative).encode("utf-8", "surrogateescape")

    replace_with_retry(store, key, update)
    return result[0]


__all__ += ["merge_into_state", "join_path"]

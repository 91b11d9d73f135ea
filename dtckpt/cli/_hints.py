"""What to say when a path on the command line is not a checkpoint (rule V-FH-2).

::

    dtckpt inspect run/              no 'checkpoint' file: the prefixes there are run/ckpt-1, ...
    dtckpt inspect run/ckpt-1.index  an index file: its checkpoint prefix is run/ckpt-1
    dtckpt inspect run/ckpt          no such prefix: those in run/ are run/ckpt-1, run/ckpt-2
    dtckpt inspect w.safetensors     a safetensors file, not a checkpoint: dtckpt convert it

Only the directory concerned is listed, once, so a hint costs what that listing costs.
"""

from __future__ import annotations

import os
import re

from ..errors import CheckpointError

__all__ = ["MAX_NAMED", "hint_for", "with_hint"]

#: Prefixes named in a hint at most.
MAX_NAMED = 5
_DATA_FILE = re.compile(r"(.*)\.data-[0-9]{5}-of-[0-9]{5}")
_INDEX = ".index"


def with_hint(exc: CheckpointError, path: str) -> CheckpointError:
    """``exc`` with the hint for ``path`` added to its message (the same type, the same place)."""
    hint = hint_for(path)
    if hint is None:
        return exc
    return type(exc)(
        f"{exc.message}. {hint}", path=exc.path, key=exc.key, offset=exc.offset, client=exc.client
    )


def hint_for(path: str) -> str | None:
    """A sentence pointing at the checkpoint ``path`` was probably meant to name, or ``None``."""
    if "://" in path:  # object storage: nothing to list here
        return None
    name = os.path.basename(path.rstrip("/" + os.sep))
    if os.path.isdir(path):
        found = _prefixes(path)
        if not found:
            return "There is no *.index file there either"
        return f"The checkpoint prefixes there: {_named(found)}"
    if path.endswith(_INDEX) or _DATA_FILE.fullmatch(name):
        prefix = path[: -len(_INDEX)] if path.endswith(_INDEX) else _prefix_of_data(path)
        return (
            f"{name} is a file of a checkpoint: name the checkpoint by its prefix, {prefix}"
            if os.path.exists(prefix + _INDEX)
            else None
        )
    if os.path.isfile(path):
        lowered = name.lower()
        if lowered.endswith((".npz", ".safetensors")):
            return (
                f"{name} is a {'NumPy .npz' if lowered.endswith('.npz') else 'safetensors'} "
                f"file, not a TensorFlow checkpoint: 'dtckpt convert {path} PREFIX' makes one"
            )
        return f"{path} is a file, not a checkpoint prefix (PREFIX.index + PREFIX.data-*)"
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        return None
    found = _prefixes(parent)
    if not found:
        return None
    close = [p for p in found if os.path.basename(p).startswith(name[:3])] or found
    return f"The checkpoint prefixes in {parent}: {_named(close)}"


def _prefix_of_data(path: str) -> str:
    match = _DATA_FILE.fullmatch(path)
    assert match is not None
    return match.group(1)


def _prefixes(directory: str) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(
        os.path.join(directory, n[: -len(_INDEX)]) if directory != "." else n[: -len(_INDEX)]
        for n in names
        if n.endswith(_INDEX)
    )


def _named(prefixes: list[str]) -> str:
    shown = ", ".join(prefixes[:MAX_NAMED])
    if len(prefixes) > MAX_NAMED:
        shown += f", ... ({len(prefixes)} in all)"
    return shown

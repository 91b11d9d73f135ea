"""From a path on the command line to an open checkpoint (rule V-CL-1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..checkpoint.reader import CheckpointReader

__all__ = ["resolve_path", "open_checkpoint"]


def resolve_path(path: str) -> str:
    """A SavedModel directory means its ``variables/variables`` prefix (rule O-CK-5);
    anything else is left for :func:`dtckpt.load_checkpoint` (prefixes, directories with a
    ``checkpoint`` file, archives)."""
    from ..checkpoint.reader import resolve_save_path

    return resolve_save_path(path)


def open_checkpoint(path: str) -> CheckpointReader:
    from ..checkpoint.reader import load_checkpoint
    from ..errors import NotFoundError

    try:
        return load_checkpoint(resolve_path(path))
    except NotFoundError as exc:  # rule V-FH-2: say what is there instead
        from ._hints import with_hint

        raise with_hint(exc, path) from None

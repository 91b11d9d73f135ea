"""From a path or URL to a store and a key (rule S-SI-5).

::

    "run/ckpt-3", pathlib.Path, "file:///run/ckpt-3"  ->  (LOCAL_STORE, "run/ckpt-3")
    "s3://bucket/run/ckpt-3"   --fsspec.url_to_fs-->      (FsspecStore(s3fs), "bucket/run/ckpt-3")
    "memory://run/ckpt-3", "gs://...", any fsspec URL       the same, with that file system

A local path never imports fsspec: ``import dtckpt`` and every local save
or restore run the code they ran before stores existed. fsspec (and s3fs, gcsfs
...) are optional: a URL whose package is missing raises
:class:`~dtckpt.errors.MissingDependencyError` naming the extra to install.
How a file system is configured (S3 endpoint, credentials) is fsspec's and the
cloud SDK's business: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``fsspec.config.conf`` and so on.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError, MissingDependencyError

if TYPE_CHECKING:
    from .base import Store

__all__ = ["is_url", "resolve", "store_for"]

# Rule S-SI-5: a URL is ``scheme://...``; anything else (``ARCHIVE::PREFIX`` too) is a path.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

#: The extra of dtckpt, then the package, that brings each protocol.
_EXTRAS = {
    "s3": ("s3", "s3fs"),
    "s3a": ("s3", "s3fs"),
    "gs": ("fsspec", "gcsfs"),
    "gcs": ("fsspec", "gcsfs"),
    "az": ("fsspec", "adlfs"),
    "abfs": ("fsspec", "adlfs"),
}

#: One store per file system instance (fsspec caches the instances themselves).
_STORES: dict[int, Any] = {}


def is_url(path: object) -> bool:
    """Whether ``path`` is a URL of a non-local store (``file://`` is local)."""
    if not isinstance(path, str):
        return False
    found = _URL.match(path)
    return found is not None and found.group(1).lower() not in ("file", "local")


def _missing(protocol: str, package: str) -> MissingDependencyError:
    extra = _EXTRAS.get(protocol, ("fsspec", package))[0]
    return MissingDependencyError(
        f"{protocol}:// needs the {package} package: pip install 'dtckpt[{extra}]'"
        + (f" (or pip install {package})" if package not in ("fsspec", "s3fs") else "")
    )


def resolve(path: str | os.PathLike[str]) -> tuple[Store, str]:
    """The store that holds ``path`` and the key of ``path`` inside it (rule S-SI-5)."""
    from .local import LOCAL_STORE  # here: readers of local files never need it (cold start)

    if not isinstance(path, str):
        return LOCAL_STORE, os.fspath(path)
    found = _URL.match(path)
    if found is None:
        return LOCAL_STORE, path
    protocol = found.group(1).lower()
    if protocol in ("file", "local"):
        return LOCAL_STORE, path[found.end() :] or os.sep
    try:
        import fsspec
    except ImportError:
        raise _missing(protocol, "fsspec") from None
    try:
        fs, key = fsspec.core.url_to_fs(path)
    except ImportError:
        raise _missing(
            protocol, _EXTRAS.get(protocol, ("fsspec", f"the {protocol} driver"))[1]
        ) from None
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError(f"not a usable URL: {exc}", path=path) from None
    return store_for(fs), str(key)


def store_for(fs: Any) -> Store:
    """The :class:`~dtckpt.storage.fsspec_store.FsspecStore` of an fsspec file system."""
    from .fsspec_store import FsspecStore

    store = _STORES.get(id(fs))
    if store is None or store.fs is not fs:
        store = _STORES[id(fs)] = FsspecStore(fs)
    return store

"""The compiled CRC-32C of the ``crc32c`` package, loaded once for every kernel (V-CL-4)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType

__all__ = ["crc32c_module"]


def crc32c_module() -> ModuleType:
    """The ``crc32c`` package's compiled module, loaded without the package's ``__init__``.

    That ``__init__`` imports ``importlib.metadata`` (and ``email``...) to look up its own
    version string: some 13 ms of the 300 a cold ``dtckpt inspect`` may take (V-CL-4). Where
    the package is not laid out as expected, it is imported as usual. The module is registered
    under its own name, so that a later ``import crc32c`` uses it.
    """
    name = "crc32c._crc32c"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    try:
        package = importlib.util.find_spec("crc32c")  # finds, does not run, the package
        for directory in (package.submodule_search_locations or []) if package else []:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                path = os.path.join(directory, "_crc32c" + suffix)
                if os.path.isfile(path):
                    loader = importlib.machinery.ExtensionFileLoader(name, path)
                    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
                    if spec is None:
                        continue
                    module = importlib.util.module_from_spec(spec)
                    loader.exec_module(module)
                    if callable(getattr(module, "crc32c", None)):
                        sys.modules[name] = module
                        return module
    except (ImportError, OSError, ValueError):
        pass
    import crc32c as package_module

    compiled: ModuleType = package_module  # the package exposes the same crc32c function
    return compiled

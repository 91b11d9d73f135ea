"""The program every rank of :func:`tests.mpi.run_ranks` runs: ``MODULE:FUNCTION ARGS_JSON``."""

from __future__ import annotations

import importlib
import json
import sys


def main() -> None:
    target, args = sys.argv[1], json.loads(sys.argv[2])
    module_name, function_name = target.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    function(*args)


if __name__ == "__main__":
    main()

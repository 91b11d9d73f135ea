"""``python -m dtckpt ...``: the same command line as the ``dtckpt`` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

"""The compiled CRC-32C is loaded without running the ``crc32c`` package's ``__init__``."""

from __future__ import annotations

import subprocess
import sys


def test_the_compiled_module_is_the_packages_own() -> None:
    code = (
        "import sys\n"
        "from dtckpt.kernels._crc32c import crc32c_module\n"
        "m = crc32c_module()\n"
        "assert m is crc32c_module()\n"
        "assert 'crc32c' not in sys.modules and 'importlib.metadata' not in sys.modules\n"
        "assert m.crc32c(b'123456789') == 0xE3069283\n"  # the CRC-32C check value
        "assert m.crc32c(b'56789', m.crc32c(b'1234')) == 0xE3069283\n"
        "import crc32c\n"  # the package imported afterwards shares the module
        "assert crc32c.crc32c is m.crc32c and crc32c.__version__\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr

"""Backend selection: nothing is imported at import time and the env var forces NumPy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, **env: str) -> str:
    full_env = {k: v for k, v in os.environ.items() if k != "DTCKPT_DISABLE_NUMBA"}
    full_env.update(env)
    full_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), full_env.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_import_does_not_load_numba() -> None:
    out = _run(
        "import sys, dtckpt.kernels; "
        "print('numba' in sys.modules, 'dtckpt.kernels.jit' in sys.modules)"
    )
    assert out == "False False"


def test_env_var_selects_numpy_and_never_loads_numba() -> None:
    code = (
        "import sys, dtckpt.kernels as k; k.encode_varint_lengths([1]); "
        "print(k.backend(), 'numba' in sys.modules)"
    )
    assert _run(code, DTCKPT_DISABLE_NUMBA="1") == "numpy False"


def test_default_backend_is_numba() -> None:
    assert _run("import dtckpt.kernels as k; print(k.backend())") == "numba"
    assert (
        _run("import dtckpt.kernels as k; print(k.backend())", DTCKPT_DISABLE_NUMBA="0") == "numba"
    )

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


def test_cold_jobs_under_the_cold_start_size_stay_on_the_twins() -> None:
    # Before the backend is loaded, a 1 MiB job (above SMALL_WORK_BYTES) stays on NumPy so
    # that a short command never pays for importing Numba; once loaded, the same job uses it.
    code = (
        "import sys, dtckpt.kernels as k; "
        "cold = k.sized(1 << 20, 64 << 10).__name__; "
        "numba_cold = 'numba' in sys.modules; "
        "big = k.sized(k.COLD_START_BYTES, 64 << 10).__name__; "
        "warm = k.sized(1 << 20, 64 << 10).__name__; "
        "print(cold, numba_cold, big, warm)"
    )
    cold, numba_cold, big, warm = _run(code).split()
    assert cold == "dtckpt.kernels.reference" and numba_cold == "False"
    assert big == warm == "dtckpt.kernels.jit"
    assert _run(code, DTCKPT_DISABLE_NUMBA="1").split()[2:] == [
        "dtckpt.kernels.reference",
        "dtckpt.kernels.reference",
    ]

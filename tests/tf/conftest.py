"""Gate for the live TensorFlow cross-checks.

With ``DTCKPT_REQUIRE_TF=1`` (the ``tf`` tox environment) TensorFlow is
imported unconditionally, so a missing or broken install fails the run
instead of silently skipping it. Without the variable, a machine that lacks
TensorFlow skips this whole directory.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if os.environ.get("DTCKPT_REQUIRE_TF") == "1":
    import tensorflow  # noqa: F401
else:
    pytest.importorskip("tensorflow")

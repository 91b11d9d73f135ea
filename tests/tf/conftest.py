"""Gate for the live TensorFlow cross-checks in this directory.

With ``DTCKPT_REQUIRE_TF=1`` (set by the ``tf`` tox environment) TensorFlow is
imported here unconditionally, so a missing or broken install makes the run
fail at collection instead of skipping everything. Without the variable, a
machine that lacks TensorFlow skips these tests: each module starts with
``pytest.importorskip("tensorflow")``. (That call cannot live here: when
pytest is pointed at ``tests/tf`` itself, this conftest is loaded before
collection starts, and a skip raised at that point aborts the run.)

TensorFlow's C++ logging is quietened before anything imports it.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if os.environ.get("DTCKPT_REQUIRE_TF") == "1":
    import tensorflow  # noqa: F401

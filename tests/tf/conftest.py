"""Gate for the live TensorFlow cross-checks in this directory.

With ``DTCKPT_REQUIRE_TF=1`` (set by the ``tf`` tox environment) TensorFlow is
imported here unconditionally, so a missing or broken install makes the run
fail at collection instead of skipping everything. Without the variable, a
machine that lacks TensorFlow skips these tests: each module starts with
``pytest.importorskip("tensorflow")``. (That call cannot live here: when
pytest is pointed at ``tests/tf`` itself, this conftest is loaded before
collection starts, and a skip raised at that point aborts the run.)

TensorFlow's C++ logging is quietened before anything imports it, and the
host CPU is split into 8 logical devices before TensorFlow starts, so that the
DTensor cross-checks have a mesh of up to 8 devices.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _configure(tf: object) -> None:
    config = tf.config  # type: ignore[attr-defined]
    cpus = config.list_physical_devices("CPU")
    config.set_logical_device_configuration(
        cpus[0], [config.LogicalDeviceConfiguration()] * 8
    )


if os.environ.get("DTCKPT_REQUIRE_TF") == "1":
    import tensorflow

    _configure(tensorflow)
else:
    try:
        import tensorflow
    except ImportError:
        pass
    else:
        _configure(tensorflow)

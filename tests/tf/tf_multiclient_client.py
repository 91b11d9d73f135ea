"""One TensorFlow DTensor client: saves or restores the cross-check model, on a mesh it shares.

Run by ``test_multiclient_crosscheck.py`` as ``python tf_multiclient_client.py '<json>'``,
one process per client, configured as TensorFlow's own multi-client tests configure theirs
(``DTENSOR_JOBS``, ``DTENSOR_CLIENT_ID``, ``DTENSOR_NUM_CLIENTS``, logical CPUs, then
``initialize_accelerator_system``). Restoring, it checks every local component.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    args = json.loads(sys.argv[1])
    clients = len(args["ports"])
    os.environ["DTENSOR_JOBS"] = ",".join(f"localhost:{p}" for p in args["ports"])
    os.environ["DTENSOR_CLIENT_ID"] = str(args["client"])
    os.environ["DTENSOR_NUM_CLIENTS"] = str(clients)
    os.environ["DTENSOR_JOB_NAME"] = "worker"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    from tensorflow.experimental import dtensor as tfd

    # Block arithmetic only: dtckpt's mesh layer knows nothing of clients or DTENSOR_JOBS.
    from dtckpt.mesh import Layout, create_mesh, device_box
    from tests.tf.multiclient_ranks import CROSS_NAMES, cross_layout, cross_value

    dims = [(name, int(size)) for name, size in args["dims"]]
    local = int(np.prod([s for _, s in dims])) // clients
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * local
    )
    tfd.initialize_accelerator_system("CPU")
    mesh = tfd.create_distributed_mesh(dims, device_type="CPU")
    ours = create_mesh(dims)  # the same grid
    tag = int(args["tag"]) if args["action"] == "save" else 0
    module = tf.Module()
    for name in CROSS_NAMES:
        value = cross_value(name, tag)
        specs = cross_layout(name, [n for n, _ in dims])
        replicated = tfd.Layout.replicated(mesh, rank=value.ndim)
        tensor = tfd.copy_to_mesh(tf.constant(value, dtype=str(value.dtype)), replicated)
        setattr(module, name, tfd.DVariable(tfd.relayout(tensor, tfd.Layout(specs, mesh))))
    ckpt = tf.train.Checkpoint(model=module)
    if args["action"] == "save":
        ckpt.write(args["path"])
    else:
        ckpt.read(args["path"]).assert_consumed()
        expected_tag = int(args["tag"])
        for name in CROSS_NAMES:
            variable = getattr(module, name)
            expected = cross_value(name, expected_tag)
            layout = Layout(cross_layout(name, [n for n, _ in dims]), ours)
            parts = tfd.unpack(variable.read_value())
            for device, part in zip(mesh.local_device_ids(), parts, strict=True):
                box = device_box(layout, expected.shape, device)
                want = expected[tuple(slice(s, s + n) for s, n in box)]
                got = part.numpy()
                assert got.tobytes() == want.tobytes(), (name, device)
    tfd.barrier(mesh, "done")
    print(f"client {args['client']} {args['action']} ok", flush=True)


if __name__ == "__main__":
    main()

"""A process killed in the middle of an S3 save (SIGKILL, nothing cleaned up): the previous
checkpoint and the state file stay as they were, and the next save removes what the dead one
left (rules S-OS-3, S-OS-5)."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import numpy as np

import dtckpt
from dtckpt.storage.objects import CLAIMS
from dtckpt.storage.urls import resolve

from ..s3server import assert_two_checkpoints, object_names, s3_environment, s3_filesystem

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The child saves once, says so, then saves a second time with every data part held back
# until it is killed: its claim and the first parts are in the bucket, its index is not.
_CHILD = """
import sys, threading, time
import numpy as np
import dtckpt
from dtckpt.storage import fsspec_store

fsspec_store.PART_SIZE = 5 << 20  # S3's smallest part: the value takes several
directory = sys.argv[1]
value = np.arange((24 << 20) // 4, dtype=np.float32)
v = dtckpt.Variable(value)
manager = dtckpt.CheckpointManager(dtckpt.Checkpoint(v=v), directory, max_to_keep=2)
print(manager.save(), flush=True)
upload = fsspec_store._MultipartWriter._upload
announced = threading.Lock()  # parts upload on several threads: one says so, once
def stalled(self, number, body):
    if number > 1:
        if announced.acquire(blocking=False):
            print("uploading", flush=True)
        time.sleep(600)
    return upload(self, number, body)
fsspec_store._MultipartWriter._upload = stalled
v.assign(value + 1)
manager.save()
"""


def test_a_save_killed_mid_upload_leaves_the_previous_checkpoint(
    s3_bucket: str, s3_server: object
) -> None:
    directory = f"{s3_bucket}/run"
    env = {**os.environ, **s3_environment(os.environ["AWS_ENDPOINT_URL"])}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, directory],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline().strip()
        assert first == f"{directory}/ckpt-1", child.stderr.read() if not first else first
        assert child.stdout.readline().strip() == "uploading"
        store, state_key = resolve(f"{directory}/checkpoint")
        state = store.read(state_key)
        # Its data object is a multipart upload under way (an object only once complete);
        # its claim is in the bucket.
        assert object_names(f"{directory}/{CLAIMS}") == ["ckpt-2"]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    # The dead save committed nothing: no index, the state file untouched, its claim left.
    assert "ckpt-2.index" not in object_names(directory)
    assert store.read(state_key) == state
    assert object_names(f"{directory}/{CLAIMS}") == ["ckpt-2"]
    value = np.arange((24 << 20) // 4, dtype=np.float32)
    v = dtckpt.Variable(np.zeros_like(value))
    ckpt = dtckpt.Checkpoint(v=v)
    manager = dtckpt.CheckpointManager(ckpt, directory, max_to_keep=2)
    assert manager.latest_checkpoint == first
    ckpt.restore(manager.latest_checkpoint).assert_consumed()
    assert np.array_equal(v.numpy(), value)
    bucket = s3_bucket[len("s3://") :]
    uploads = s3_filesystem().call_s3(
        "list_multipart_uploads", Bucket=bucket, Prefix="run/ckpt-2.data-"
    )
    assert len(uploads.get("Uploads", [])) == 1  # the dead save's parts, still stored
    # The next save finds the dead process's claim stale and takes the prefix over, aborting
    # the upload the dead process left.
    v.assign(value + 2)
    second = manager.save()
    assert second == f"{directory}/ckpt-2"
    assert_two_checkpoints(directory)
    uploads = s3_filesystem().call_s3(
        "list_multipart_uploads", Bucket=bucket, Prefix="run/ckpt-2.data-"
    )
    assert uploads.get("Uploads", []) == []
    v.assign(np.zeros_like(value))
    ckpt.restore(second).assert_consumed()
    assert np.array_equal(v.numpy(), value + 2)

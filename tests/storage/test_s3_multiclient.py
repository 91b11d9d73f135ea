"""Several MPI clients saving to and restoring from S3 (rules S-OS-1 to S-OS-3, P-SV-2).

Every client writes its own devices' data objects under their final names; client 0
creates the index only if absent. The objects are byte for byte a one-process local save.
"""

from __future__ import annotations

import pathlib

from tests.dtensor import multiclient_ranks as ranks
from tests.dtensor.test_multiclient import AB, XY
from tests.mpi import run_ranks

from ..s3server import s3_filesystem


def test_four_clients_save_to_s3_and_two_restore(s3_bucket: str, tmp_path: pathlib.Path) -> None:
    one, four = f"{s3_bucket}/by1/c", f"{s3_bucket}/by4/c"
    ranks.save_for_resharding(one, XY, 1)
    run_ranks(4, "tests.dtensor.multiclient_ranks:reshard_round", [[one, 1]], XY, four, 4)
    run_ranks(2, "tests.dtensor.multiclient_ranks:restore_and_check", [[four, 4], [one, 1]], AB)
    ranks.restore_and_check([[four, 4]], AB)
    local = tmp_path / "one"
    ranks.save_for_resharding(str(local / "c"), XY, 4)
    fs = s3_filesystem()
    stored = sorted(p.rpartition("/")[2] for p in fs.ls(f"{s3_bucket[5:]}/by4", detail=False))
    assert stored == sorted(p.name for p in local.iterdir())
    for name in stored:
        assert fs.cat_file(f"{s3_bucket[5:]}/by4/{name}") == (local / name).read_bytes(), name

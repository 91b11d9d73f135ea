"""From paths and URLs to stores (rule S-SI-5)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import pytest

import dtckpt
from dtckpt.errors import MissingDependencyError
from dtckpt.storage.local import LOCAL_STORE
from dtckpt.storage.urls import is_url, resolve


@pytest.mark.parametrize(
    "path, url",
    [
        ("run/ckpt-1", False),
        ("/abs/ckpt", False),
        ("model.dtar::ckpt-3", False),
        ("file:///tmp/x", False),
        ("s3://bucket/run", True),
        ("memory://x", True),
        ("gs://b/c", True),
        ("c:/windows/path", False),
    ],
)
def test_is_url(path: str, url: bool) -> None:
    assert is_url(path) is url


def test_local_paths_stay_local(tmp_path: pathlib.Path) -> None:
    assert resolve(str(tmp_path / "x")) == (LOCAL_STORE, str(tmp_path / "x"))
    assert resolve(tmp_path / "x") == (LOCAL_STORE, str(tmp_path / "x"))
    assert resolve("file:///tmp/x") == (LOCAL_STORE, "/tmp/x")


def test_a_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)  # import fsspec now fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'dtckpt\[s3\]'"):
        resolve("s3://bucket/run/ckpt")
    with pytest.raises(ImportError):  # it is an ImportError too
        dtckpt.load_checkpoint("s3://bucket/run/ckpt")


def test_a_missing_driver_names_its_package() -> None:
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="gcsfs"):
            resolve("gs://bucket/ckpt")
    else:  # pragma: no cover - gcsfs installed: nothing is missing
        pytest.skip("gcsfs is installed")


def test_import_dtckpt_imports_no_store_library() -> None:
    code = (
        "import sys, dtckpt, dtckpt.cli; dtckpt.Checkpoint; dtckpt.load_checkpoint;"
        "print(sorted(m for m in ('fsspec', 's3fs', 'botocore') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_merging_in_a_store(tmp_path: pathlib.Path) -> None:
    """memory:// has no conditional requests; a merge there commits as on S3 (F-MG-1)."""
    root = f"memory://merging/{tmp_path.name}"
    for i in range(2):
        dtckpt.save_v2(f"{root}/p{i}/part", [f"t{i}"], [""], [np.full(3, i, np.float32)])
    dtckpt.merge_v2_checkpoints([f"{root}/p0/part", f"{root}/p1/part"], f"{root}/merged")
    store, key = resolve(root)
    assert sorted(store.list(key)) == [
        "merged.data-00000-of-00002",
        "merged.data-00001-of-00002",
        "merged.index",
    ]
    assert store.list(f"{key}/p0") == [] and store.list(f"{key}/p1") == []
    reader = dtckpt.load_checkpoint(f"{root}/merged")
    assert [list(reader.get_tensor(f"t{i}")) for i in range(2)] == [[0, 0, 0], [1, 1, 1]]
    reader.close()

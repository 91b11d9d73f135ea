"""From paths and URLs to stores (rule S-SI-5)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import dtckpt
from dtckpt.errors import MissingDependencyError, UnimplementedError
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


def test_merging_in_a_store_is_refused_before_anything_is_written() -> None:
    with pytest.raises(UnimplementedError, match="object store"):
        dtckpt.merge_v2_checkpoints(["memory://m/a"], "memory://m/merged")
    assert not pathlib.Path("memory:").exists()

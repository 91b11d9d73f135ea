"""The README's Python example runs as written (with its paths moved into a temp dir)."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_readme_python_example(tmp_path: pathlib.Path) -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    import fsspec

    saved = dict(fsspec.config.conf)  # the object-store example configures s3 for itself
    try:
        for code in blocks:
            exec(compile(code.replace("/tmp/ck", str(tmp_path / "ck")), "README.md", "exec"), {})
    finally:
        fsspec.config.conf.clear()
        fsspec.config.conf.update(saved)

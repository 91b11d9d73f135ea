"""The README's Python example runs as written (with its paths moved into a temp dir)."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_readme_python_example(tmp_path: pathlib.Path) -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for code in blocks:
        exec(compile(code.replace("/tmp/ck", str(tmp_path / "ck")), "README.md", "exec"), {})

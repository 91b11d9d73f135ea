"""Every shell example of the README and of every ``--help`` runs as written (rule V-FH-1).

The examples run with ``sh`` in a scratch directory holding a link to ``spec/`` (the README's
examples name golden checkpoints by relative path), with ``dtckpt`` on ``PATH`` running this
checkout (``python -m dtckpt``) and ``/tmp/`` moved into the scratch directory. Commands that set
up an environment (``python -m venv``, activating it, ``pip install``, ``tox``) are not run here;
they are checked instead to install only into the ``.venv`` they create.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import stat
import subprocess
import sys

import pytest

from dtckpt.cli import build_parser

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
#: The order in which the commands' examples run: each may use what earlier ones wrote.
ORDER = ["demo", "inspect", "verify", "diff", "explain", "convert", "pack", "unpack"]
_SETUP = re.compile(
    r"^(python -m venv \.venv|\. \.venv/bin/activate|pip install \.|"
    r"\.venv/bin/python -m pip install tox|\.venv/bin/python -m tox)$"
)


class Sandbox:
    def __init__(self, root: pathlib.Path) -> None:
        self.cwd = root / "work"
        self.tmp = root / "tmp"
        self.bin = root / "bin"
        for d in (self.cwd, self.tmp, self.bin):
            d.mkdir()
        (self.cwd / "spec").symlink_to(ROOT / "spec")
        for name, argv in (("dtckpt", f'"{sys.executable}" -m dtckpt'), ("python", sys.executable)):
            script = self.bin / name
            script.write_text(f'#!/bin/sh\nexec {argv} "$@"\n')
            script.chmod(script.stat().st_mode | stat.S_IEXEC)
        self.env = dict(os.environ)
        self.env["PATH"] = f"{self.bin}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), self.env.get("PYTHONPATH")) if p
        )

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        command = command.replace("/tmp/", f"{self.tmp}/")
        return subprocess.run(
            ["sh", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def check(self, command: str) -> None:
        """The command succeeds; ``diff`` may also exit 1, its answer "they differ" (V-DF-1)."""
        done = self.run(command)
        differ = command.startswith("dtckpt diff") and done.returncode == 1
        if differ:
            assert "they differ" in done.stdout and "error" not in done.stderr, done.stderr
            return
        assert done.returncode == 0, f"{command!r} exited {done.returncode}:\n{done.stderr}"


def _epilog_examples() -> dict[str, list[str]]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    out = {}
    for name, command in sub.choices.items():  # type: ignore[attr-defined]
        text = command.epilog or ""
        lines = text.split("example", 1)[1].splitlines()[1:] if "example" in text else []
        out[name] = [line.strip() for line in lines if line.startswith("  dtckpt ")]
    return out


def _readme_blocks(kind: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{kind}\n(.*?)```", text, re.S)


def test_every_help_example_runs(tmp_path: pathlib.Path) -> None:
    examples = _epilog_examples()
    assert sorted(examples) == sorted(ORDER)
    box = Sandbox(tmp_path)
    for name in ORDER:
        assert examples[name], f"dtckpt {name} --help shows no example"
        for command in examples[name]:
            box.check(command)
    assert (box.tmp / "demo.svg").read_text().startswith("<?xml")


def test_every_readme_shell_example_runs(tmp_path: pathlib.Path) -> None:
    box = Sandbox(tmp_path)
    (train,) = _readme_blocks("py")  # the multi-process program the next block launches
    (box.cwd / "train.py").write_text(train.replace("/tmp/ck", str(box.tmp / "ck")))
    ran = 0
    for block in _readme_blocks("sh"):
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if not command or command.startswith("#"):
                continue
            steps = [s.strip() for s in command.split("&&")]
            setup = [s for s in steps if _SETUP.match(s)]
            work = [s for s in steps if not _SETUP.match(s)]
            _check_installs_stay_in_venv(steps)
            if work and work[0].startswith("mpiexec") and shutil.which("mpiexec") is None:
                pytest.fail("the README launches mpiexec, which is not installed here")
            if work:
                box.check(" && ".join(work))
                ran += 1
            assert setup or work
    assert ran >= 10


def _check_installs_stay_in_venv(steps: list[str]) -> None:
    """A ``pip install`` runs in the ``.venv`` made just before it, never in the caller's Python."""
    active = False
    for step in steps:
        if step == ". .venv/bin/activate":
            active = True
        if "pip install" in step:
            assert active or step.startswith(".venv/bin/python -m pip"), step


def test_the_readme_test_command_installs_nothing_outside_its_venv() -> None:
    lines = [
        line
        for block in _readme_blocks("sh")
        for line in block.splitlines()
        if "tox" in line or "pip install" in line
    ]
    assert any(".venv/bin/python -m tox" in line for line in lines)
    for line in lines:
        _check_installs_stay_in_venv([s.strip() for s in line.split("&&")])
        assert "--user" not in line and "sudo" not in line

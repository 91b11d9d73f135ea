"""The ``checkpoint`` state file and ``latest_checkpoint``."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dtckpt
from dtckpt.checkpoint.state import (
    CheckpointState,
    format_checkpoint_state,
    get_checkpoint_state,
    latest_checkpoint,
    parse_checkpoint_state,
)
from dtckpt.errors import DataLossError, InvalidArgumentError

TF_MANAGER_STATE = """model_checkpoint_path: "ckpt-3"
all_model_checkpoint_paths: "ckpt-2"
all_model_checkpoint_paths: "ckpt-3"
all_model_checkpoint_timestamps: 1795497185.4494793
all_model_checkpoint_timestamps: 1795497185.454388
last_preserved_timestamp: 1795497184.4300873
"""


def test_parse_and_format_tf_text() -> None:
    state = parse_checkpoint_state(TF_MANAGER_STATE)
    assert state == CheckpointState(
        "ckpt-3", ["ckpt-2", "ckpt-3"], [1795497185.4494793, 1795497185.454388], 1795497184.4300873
    )
    assert format_checkpoint_state(state) == TF_MANAGER_STATE


@given(
    st.text(max_size=30),
    st.lists(st.text(max_size=10), max_size=3),
    st.lists(st.floats(0, 2e9), max_size=3),
)
def test_round_trip(path: str, others: list[str], stamps: list[float]) -> None:
    state = CheckpointState(path, others, stamps, 0.0)
    assert parse_checkpoint_state(format_checkpoint_state(state)) == state


def test_escapes() -> None:
    text = 'model_checkpoint_path: "a\\"b\\\\c\\303\\251\\n"\n'
    assert parse_checkpoint_state(text).model_checkpoint_path == 'a"b\\cé\n'
    assert format_checkpoint_state(CheckpointState('a"é')) == 'model_checkpoint_path: "a\\"é"\n'


@pytest.mark.parametrize(
    "text", ["nonsense", "model_checkpoint_path: 3", 'unknown: "x"', 'model_checkpoint_path: "\\q"']
)
def test_parse_errors(text: str) -> None:
    with pytest.raises(DataLossError):
        parse_checkpoint_state(text)


def test_latest_checkpoint(tmp_path: pathlib.Path) -> None:
    assert latest_checkpoint(str(tmp_path)) is None
    (tmp_path / "checkpoint").write_text(TF_MANAGER_STATE)
    assert latest_checkpoint(str(tmp_path)) is None  # files do not exist yet
    dtckpt.save_v2(str(tmp_path / "ckpt-3"), ["x"], [""], [np.arange(3)])
    assert latest_checkpoint(str(tmp_path)) == os.path.join(str(tmp_path), "ckpt-3")
    state = get_checkpoint_state(str(tmp_path))
    assert state is not None and state.all_model_checkpoint_paths[0] == str(tmp_path / "ckpt-2")
    # A directory works wherever a prefix does.
    assert dtckpt.list_variables(str(tmp_path)) == [("x", [3])]


def test_unreadable_or_empty_state(tmp_path: pathlib.Path) -> None:
    (tmp_path / "checkpoint").write_text("garbage ###")
    assert get_checkpoint_state(str(tmp_path)) is None
    (tmp_path / "checkpoint").write_text('all_model_checkpoint_paths: "x"\n')
    with pytest.raises(InvalidArgumentError, match="Invalid checkpoint state"):
        get_checkpoint_state(str(tmp_path))


def test_absolute_paths_kept(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "elsewhere" / "model"
    dtckpt.save_v2(str(target), ["x"], [""], [1])
    (tmp_path / "checkpoint").write_text(f'model_checkpoint_path: "{target}"\n')
    assert latest_checkpoint(str(tmp_path)) == str(target)

"""``dtckpt.merge_v2_checkpoints`` against ``tf.raw_ops.MergeV2Checkpoints``, live.

A drawn plan is a sharded save as TF's savers do it: 1-4 ``SaveV2`` calls into
part prefixes, one partitioned tensor with its slices spread over different
parts, then a merge into ``ckpt``. The whole pipeline runs once with dtckpt
and once with TF in two directories; afterwards the two trees must hold the
same files with the same bytes (merged index, renamed data files, and what
``delete_old_dirs`` left behind), and TF must read dtckpt's merged checkpoint.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from dataclasses import dataclass

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import dtckpt  # noqa: E402

from ._tensors import (  # noqa: E402
    TF_RESLICES,
    SaveCall,
    Tensor,
    assert_dtckpt_value,
    assert_tf_value,
    dtckpt_save,
    files_under,
    tensor_names,
    tensors,
    tf_restore,
    tf_save,
)


@dataclass(frozen=True)
class MergePlan:
    tensors: tuple[Tensor, ...]
    parts: tuple[tuple[tuple[int, int], ...], ...]  # (tensor, piece) pairs per part
    in_temp_dir: bool  # parts under ckpt_temp/ (TF's layout) or next to the destination
    missing_at: int | None  # where a prefix with no files sits in the list
    delete_old_dirs: bool

    def part_prefixes(self, root: str) -> list[str]:
        count = len(self.parts)
        if self.in_temp_dir:
            prefixes = [
                os.path.join(root, "ckpt_temp", f"part-{i:05d}-of-{count:05d}")
                for i in range(count)
            ]
        else:
            prefixes = [os.path.join(root, f"ckpt_part{i}") for i in range(count)]
        if self.missing_at is not None:
            prefixes.insert(self.missing_at, os.path.join(root, "ckpt_temp", "never-written"))
        return prefixes

    def saves(self, root: str) -> list[tuple[str, SaveCall]]:
        existing = [p for p in self.part_prefixes(root) if not p.endswith("never-written")]
        return [(p, SaveCall(self.tensors, order)) for p, order in zip(existing, self.parts)]


@st.composite
def merge_plans(draw: st.DrawFn) -> MergePlan:
    count = draw(st.integers(1, 4))
    names = draw(st.lists(tensor_names, min_size=count + 1, max_size=count + 4, unique=True))
    partitioned = draw(tensors(names[0], dtypes=sorted(TF_RESLICES), sliced=True))
    drawn = (partitioned, *(draw(tensors(n)) for n in names[1:]))
    parts: list[list[tuple[int, int]]] = [[] for _ in range(count)]
    shift = draw(st.integers(0, count - 1))
    for p in range(len(partitioned.specs)):  # consecutive slices land in different parts
        parts[(p + shift) % count].append((0, p))
    for t in range(1, len(drawn)):
        for p in range(len(drawn[t].specs)):
            home = t - 1 if t - 1 < count else draw(st.integers(0, count - 1))
            parts[home].append((t, p))
    ordered = tuple(tuple(draw(st.permutations(part))) for part in parts)
    missing_at = draw(st.none() | st.integers(0, count))
    return MergePlan(drawn, ordered, draw(st.booleans()), missing_at, draw(st.booleans()))


def _tree(root: str) -> tuple[list[str], dict[str, bytes]]:
    dirs = sorted(os.path.relpath(d, root) for d, _, _ in os.walk(root))
    return dirs, files_under(root)


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(merge_plans())
def test_merge_matches_tf(plan: MergePlan) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = os.path.join(tmp, "ours"), os.path.join(tmp, "theirs")
        os.mkdir(ours)
        os.mkdir(theirs)  # TF's writer creates the prefix's directory, but not its parents
        for prefix, call in plan.saves(ours):
            dtckpt_save(prefix, call)
        for prefix, call in plan.saves(theirs):
            tf_save(prefix, call)
        allow_missing = plan.missing_at is not None
        dtckpt.merge_v2_checkpoints(
            plan.part_prefixes(ours),
            os.path.join(ours, "ckpt"),
            delete_old_dirs=plan.delete_old_dirs,
            allow_missing_files=allow_missing,
        )
        tf.raw_ops.MergeV2Checkpoints(
            checkpoint_prefixes=plan.part_prefixes(theirs),
            destination_prefix=os.path.join(theirs, "ckpt"),
            delete_old_dirs=plan.delete_old_dirs,
            allow_missing_files=allow_missing,
        )
        ours_dirs, ours_files = _tree(ours)
        theirs_dirs, theirs_files = _tree(theirs)
        assert ours_dirs == theirs_dirs
        assert sorted(ours_files) == sorted(theirs_files)
        for name in ours_files:
            assert ours_files[name] == theirs_files[name], name

        prefix = os.path.join(ours, "ckpt")
        reader = tf.train.load_checkpoint(prefix)
        assert reader.get_variable_to_shape_map() == {t.name: list(t.shape) for t in plan.tensors}
        with dtckpt.load_checkpoint(prefix) as ours_reader:
            for t in plan.tensors:
                assert_tf_value(reader.get_tensor(t.name), t.value, t.name)
                assert_dtckpt_value(ours_reader.get_tensor(t.name), t.value, t.name)
        partitioned = plan.tensors[0]
        spec = partitioned.request_spec
        (got,) = tf_restore(prefix, [partitioned.name], [spec], [partitioned.dtype])
        assert_tf_value(got, partitioned.expected_request, f"{partitioned.name} {spec!r}")


def _save(
    prefix: pathlib.Path,
    names: list[str],
    specs: list[str],
    values: list[np.ndarray],
    *,
    with_tf: bool,
) -> None:
    if with_tf:
        tf.raw_ops.SaveV2(
            prefix=str(prefix),
            tensor_names=names,
            shape_and_slices=specs,
            tensors=[tf.constant(v) for v in values],
        )
    else:
        dtckpt.save_v2(str(prefix), names, specs, values)


DUPLICATES = {
    "plain key in two parts": (
        (["a", "b"], ["", ""]),
        (["a"], [""]),
    ),
    "slice key in two parts": (
        (["p"], ["4 0,2"]),
        (["p"], ["4 0,2"]),
    ),
    "plain and partitioned": (
        (["p"], [""]),
        (["p"], ["4 2,2"]),
    ),
}


@pytest.mark.parametrize("case", sorted(DUPLICATES))
def test_both_reject_duplicate_keys(case: str, tmp_path: pathlib.Path) -> None:
    failures = {}
    for side in ("ours", "theirs"):
        root = tmp_path / side
        root.mkdir()
        prefixes = []
        for i, (names, specs) in enumerate(DUPLICATES[case]):
            values = [np.arange(2 if spec else 4, dtype=np.float32) for spec in specs]
            prefixes.append(root / f"part{i}")
            _save(prefixes[-1], names, specs, values, with_tf=side == "theirs")
        destination = str(root / "ckpt")
        try:
            if side == "ours":
                dtckpt.merge_v2_checkpoints([str(p) for p in prefixes], destination)
            else:
                tf.raw_ops.MergeV2Checkpoints(
                    checkpoint_prefixes=[str(p) for p in prefixes], destination_prefix=destination
                )
        except (dtckpt.errors.CheckpointError, tf.errors.OpError) as exc:
            failures[side] = exc
    assert set(failures) == {"ours", "theirs"}, f"only {sorted(failures)} rejected the merge"


def test_both_reject_missing_part(tmp_path: pathlib.Path) -> None:
    for side in ("ours", "theirs"):
        root = tmp_path / side
        root.mkdir()
        _save(root / "part0", ["a"], [""], [np.ones(3, np.float32)], with_tf=side == "theirs")
        prefixes = [str(root / "part0"), str(root / "absent")]
        destination = str(root / "ckpt")
        if side == "ours":
            with pytest.raises(dtckpt.errors.CheckpointError):
                dtckpt.merge_v2_checkpoints(prefixes, destination, allow_missing_files=False)
        else:
            with pytest.raises(tf.errors.OpError):
                tf.raw_ops.MergeV2Checkpoints(
                    checkpoint_prefixes=prefixes,
                    destination_prefix=destination,
                    allow_missing_files=False,
                )

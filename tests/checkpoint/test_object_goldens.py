"""TF-written object-graph goldens: rebuilt in dtckpt byte for byte, and restored into dtckpt.

Each ``spec/golden/og_*`` manifest describes the Python structure TensorFlow
saved (``structure``), the calls that saved it (``saves``), the decoded object
graph and every value. No TensorFlow is needed here.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pytest

import dtckpt
from dtckpt.format.object_graph import decode_object_graph, encode_object_graph
from tests.conftest import Golden, assert_same_array, golden_names, load_golden

OBJECT_GOLDENS = [n for n in golden_names() if n.startswith("og_")]
REBUILDABLE = [
    n
    for n in OBJECT_GOLDENS
    if (load_golden(n).manifest.get("structure") or {}).get("kind") == "checkpoint"
]
# Written through Checkpoint.write/save (a CheckpointManager golden's files carry timestamps).
REWRITABLE = [
    n
    for n in REBUILDABLE
    if any(s.get("method") in ("write", "save") for s in load_golden(n).manifest["saves"])
]


def _zero(value: np.ndarray) -> np.ndarray:
    if value.dtype == object:
        out = np.empty(value.shape, dtype=object)
        out.fill(b"")
        return out
    return np.zeros_like(value)


class Builder:
    """Builds dtckpt objects from a manifest ``structure``."""

    def __init__(self, golden: Golden, zero: bool) -> None:
        self.golden, self.zero = golden, zero
        self.placed: dict[tuple[Any, ...], Any] = {}

    def node(self, spec: dict[str, Any], path: tuple[Any, ...]) -> Any:
        kind = spec["kind"]
        if kind == "ref":
            return self.placed[tuple(spec["path"])]
        if kind == "variable":
            value = self.golden.value(spec["value"])
            obj: Any = dtckpt.Variable(
                _zero(value) if self.zero else value, name=spec["name"], trainable=spec["trainable"]
            )
        elif kind == "module":
            obj = dtckpt.Module(name=spec.get("name"))
            self.placed[path] = obj
            for attr, child in spec["attrs"]:
                setattr(obj, attr, self.node(child, path + (attr,)))
                self.placed[path + (attr,)] = getattr(obj, attr)
        elif kind in ("list", "tuple"):
            items = [self.node(c, path + (i,)) for i, c in enumerate(spec["items"])]
            obj = items if kind == "list" else tuple(items)
        else:
            obj = {k: self.node(c, path + (k,)) for k, c in spec["items"]}
        self.placed.setdefault(path, obj)
        return obj

    def checkpoint(self) -> dtckpt.Checkpoint:
        structure = self.golden.manifest["structure"]
        root = self.node(structure["root"], ("root",)) if structure.get("root") else None
        kwargs = {}
        for name, spec in structure["kwargs"]:
            kwargs[name] = self.node(spec, (name,))
        return dtckpt.Checkpoint(root, **kwargs)

    def lookup(self, ckpt: dtckpt.Checkpoint, path: list[Any]) -> Any:
        obj: Any = ckpt.root if path[0] == "root" else ckpt
        for part in path if path[0] != "root" else path[1:]:
            obj = obj[part] if isinstance(part, int) or isinstance(obj, dict) else getattr(obj, part)
        return obj


@pytest.mark.parametrize("name", REWRITABLE)
def test_rebuilt_structure_writes_tf_bytes(name: str, tmp_path: pathlib.Path) -> None:
    golden = load_golden(name)
    builder = Builder(golden, zero=False)
    ckpt = builder.checkpoint()
    compared = 0
    for step in golden.manifest["saves"]:
        if "assign" in step:
            builder.lookup(ckpt, step["assign"]).assign(golden.value(step["value"]))
            continue
        if step["method"] not in ("write", "save"):
            continue
        returned = getattr(ckpt, step["method"])(str(tmp_path / step["file_prefix"]))
        assert returned == str(tmp_path / step["returned"])
        for file_name in step.get("files") or golden.manifest["files"]:
            if file_name.startswith(step["returned"] + "."):
                assert (tmp_path / file_name).read_bytes() == (
                    golden.directory / file_name
                ).read_bytes(), file_name
                compared += 1
        if step.get("state_file") is not None:
            assert (tmp_path / "checkpoint").read_text() == step["state_file"]
    assert compared >= 2


@pytest.mark.parametrize("name", REBUILDABLE)
def test_golden_restores_into_rebuilt_structure(name: str) -> None:
    golden = load_golden(name)
    builder = Builder(golden, zero=True)
    ckpt = builder.checkpoint()
    method = golden.manifest["saves"][-1]["method"]
    status = (ckpt.read if method == "write" else ckpt.restore)(golden.prefix)
    status.assert_consumed()
    expected = golden.expected()
    # Every restored variable now holds TF's value: re-reading the checkpoint's keys
    # through dtckpt's own objects gives the expected arrays.
    for key, value in expected.items():
        if key == "_CHECKPOINTABLE_OBJECT_GRAPH":
            continue
        path = key.split("/.ATTRIBUTES/")[0].split("/")
        obj: Any = ckpt
        for part in path:
            part = part.replace(".S", "/").replace("..", ".")
            children = obj._trackable_children() if obj is not ckpt.root else {
                **obj._trackable_children(), **ckpt._attached()}
            if obj is ckpt and ckpt.root is not ckpt:
                children = {**ckpt.root._trackable_children(), **ckpt._attached()}
            obj = children[part]
        assert_same_array(obj.numpy(), value, key)


WITH_GRAPH = [n for n in OBJECT_GOLDENS if load_golden(n).manifest.get("object_graph_hex")]


def test_only_the_name_based_golden_lacks_a_graph() -> None:
    assert set(OBJECT_GOLDENS) - set(WITH_GRAPH) == {"og_name_based"}


@pytest.mark.parametrize("name", WITH_GRAPH)
def test_object_graph_decodes_to_manifest(name: str) -> None:
    golden = load_golden(name)
    raw = bytes.fromhex(golden.manifest["object_graph_hex"])
    graph = decode_object_graph(raw)
    assert encode_object_graph(graph) == raw
    nodes = golden.manifest["object_graph"]["nodes"]
    assert len(graph.nodes) == len(nodes)
    for ours, theirs in zip(graph.nodes, nodes, strict=True):
        assert [[c.node_id, c.local_name] for c in ours.children] == theirs["children"]
        assert [a.checkpoint_key for a in ours.attributes] == [
            a["checkpoint_key"] for a in theirs["attributes"]
        ]
        assert [[s.original_variable_node_id, s.slot_name, s.slot_variable_node_id]
                for s in ours.slot_variables] == theirs["slot_variables"]
        assert ours.has_checkpoint_values == theirs["has_checkpoint_values"]


def _skeleton(golden: Golden) -> dtckpt.Checkpoint:
    """dtckpt objects mirroring a checkpoint's object graph, with zeroed variables."""
    nodes = golden.manifest["object_graph"]["nodes"]
    slot_nodes = {s[2] for n in nodes for s in n["slot_variables"]}
    expected = golden.expected()
    made: dict[int, Any] = {}

    def make(node_id: int) -> Any:
        if node_id in made:
            return made[node_id]
        node = nodes[node_id]
        if node["attributes"]:
            made[node_id] = dtckpt.Variable(_zero(expected[node["attributes"][0]["checkpoint_key"]]))
            return made[node_id]
        obj = dtckpt.Module() if node_id else dtckpt.Checkpoint()
        made[node_id] = obj
        for child_id, local_name in node["children"]:
            if child_id not in slot_nodes and (child_id != 0):
                setattr(obj, local_name, make(child_id))
        return obj

    return make(0)


@pytest.mark.parametrize("name", ["og_keras_slots", "og_v1_slots"])
def test_optimizer_checkpoints_restore_with_slots(name: str) -> None:
    golden = load_golden(name)
    ckpt = _skeleton(golden)
    ckpt.read(golden.prefix).assert_consumed()
    expected = golden.expected()
    if name == "og_v1_slots":
        kernel = ckpt.model.kernel
        assert sorted(kernel.slots) == ["m", "v"]
        assert_same_array(
            kernel.slots["m"].numpy(),
            expected["model/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE"],
        )
        assert_same_array(kernel.numpy(), expected["model/kernel/.ATTRIBUTES/VARIABLE_VALUE"])


def test_slot_variables_can_be_skipped() -> None:
    golden = load_golden("og_v1_slots")
    ckpt = _skeleton(golden)
    options = dtckpt.CheckpointOptions(experimental_skip_slot_variables=True)
    ckpt.read(golden.prefix, options=options).assert_consumed()
    assert ckpt.model.kernel.slots == {}


def test_name_based_golden() -> None:
    golden = load_golden("og_name_based")
    expected = golden.expected()
    module = dtckpt.Module()
    for i, (key, value) in enumerate(sorted(expected.items())):
        setattr(module, f"v{i}", dtckpt.Variable(_zero(value), name=key))
    dtckpt.Checkpoint(model=module).restore(golden.prefix).assert_consumed()
    for i, (key, value) in enumerate(sorted(expected.items())):
        assert_same_array(getattr(module, f"v{i}").numpy(), value, key)


def test_savedmodel_golden_restores_from_its_directory() -> None:
    golden = load_golden("og_savedmodel")
    builder = Builder(golden, zero=True)
    root = builder.node(golden.manifest["structure"]["root"], ("root",))
    status = dtckpt.Checkpoint(root).restore(str(golden.directory / "saved"))
    status.assert_nontrivial_match()
    # As in TF: restore() creates a save_counter, which a SavedModel does not hold.
    with pytest.raises(AssertionError, match="save_counter"):
        status.assert_existing_objects_matched()
    expected = golden.expected()
    assert_same_array(root.w.numpy(), expected["w/.ATTRIBUTES/VARIABLE_VALUE"])
    status.expect_partial()


def test_manager_golden_latest_checkpoint() -> None:
    golden = load_golden("og_manager")
    latest = dtckpt.latest_checkpoint(str(golden.directory))
    assert latest == str(golden.directory / "ckpt-3")
    state = dtckpt.checkpoint.state.get_checkpoint_state(str(golden.directory))
    assert state is not None
    assert [pathlib.Path(p).name for p in state.all_model_checkpoint_paths] == ["ckpt-2", "ckpt-3"]
    assert len(state.all_model_checkpoint_timestamps) == 2


def test_failed_restore_leaves_no_slots_or_pending_restorations() -> None:
    golden = load_golden("og_v1_slots")
    ckpt = _skeleton(golden)
    ckpt.model.bias = dtckpt.Variable(np.zeros(7, np.float32))  # the wrong shape
    with pytest.raises(dtckpt.errors.InvalidArgumentError, match="bias"):
        ckpt.read(golden.prefix)
    assert ckpt.model.kernel.slots == {}
    assert not ckpt.model.kernel.numpy().any()
    # Nothing was left waiting either: no object holds a pending restoration.
    for obj in (ckpt, ckpt.model, ckpt.optimizer):
        assert not getattr(obj, "_self_deferred", None)

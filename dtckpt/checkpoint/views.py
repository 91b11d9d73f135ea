"""``CheckpointView`` and ``TrackableView``: the two object graphs, side by side (rule O-VW-1).

::

    CheckpointView(path).children(0)   {'leaf': 1, 'root': 0, 'save_counter': 2}   node ids
    TrackableView(root).children(obj)  {'leaf': <leaf>}                           live objects
    CheckpointView(path).match(root)   {0: root, 1: leaf, ...}     nodes matched by edge name

As ``tf.train.CheckpointView`` (``tensorflow/python/checkpoint/checkpoint_view.py``)
and ``tf.train.TrackableView`` (``trackable_view.py``). Walks are breadth-first
with a queue and a seen-set: each node or object once, whatever the depth.
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from typing import Any

import numpy as np

from ..errors import CheckpointError, InvalidArgumentError
from ..format.object_graph import ObjectGraphView
from .graph import OBJECT_GRAPH_PROTO_KEY
from .reader import load_checkpoint
from .trackable import Trackable

__all__ = ["CheckpointView", "TrackableView"]

_LOG = logging.getLogger("dtckpt")


class TrackableView:
    """The live object graph under ``root`` (held weakly; a ``weakref.ref`` is accepted)."""

    def __init__(self, root: Any) -> None:
        self._root_ref = root if isinstance(root, weakref.ref) else weakref.ref(root)

    @classmethod
    def children(
        cls, obj: Trackable, save_type: Any = "checkpoint", **kwargs: Any
    ) -> dict[str, Any]:
        """``{name: child}`` of ``obj`` as a checkpoint sees them (``save_type`` is
        accepted for TensorFlow's signature; dtckpt has only checkpoint children)."""
        obj._maybe_initialize_trackable()
        return dict(obj._trackable_children())

    @property
    def root(self) -> Any:
        root = self._root_ref()
        if root is None:
            raise InvalidArgumentError("the root object of this TrackableView no longer exists")
        return root

    def descendants(self) -> list[Trackable]:
        """Every object reachable from the root, breadth-first, each once (the root first)."""
        root = self.root
        found = [root]
        seen = {id(root)}
        head = 0
        while head < len(found):
            for child in self.children(found[head]).values():
                if id(child) not in seen:
                    seen.add(id(child))
                    found.append(child)
            head += 1
        return found


class CheckpointView:
    """The object graph stored in the checkpoint at ``save_path``.

    A checkpoint without an object graph (TF1's name-based ``Saver``) is an
    ``InvalidArgumentError`` (a ``ValueError``, as in TensorFlow).
    """

    def __init__(self, save_path: str) -> None:
        with load_checkpoint(save_path) as reader:
            if not reader.has_tensor(OBJECT_GRAPH_PROTO_KEY):
                raise InvalidArgumentError(
                    f'The specified checkpoint "{save_path}" does not appear to be '
                    "object-based (saved with TF2) since it is missing the key "
                    f'"{OBJECT_GRAPH_PROTO_KEY}". Likely it was created with the TF1 '
                    "name-based saver and does not contain an object dependency graph."
                )
            value = reader.get_tensor(OBJECT_GRAPH_PROTO_KEY)
            where = reader.bundle.index_path
        raw = np.asarray(value, dtype=object).item() if np.ndim(value) == 0 else None
        try:
            if not isinstance(raw, bytes):
                raise InvalidArgumentError("the object graph entry is not a scalar string")
            self._graph = ObjectGraphView(raw)
            for node_id in range(len(self._graph)):  # decode it all once: damage shows here
                for _ in self._graph.children(node_id):
                    pass
        except CheckpointError as exc:
            raise exc.located(path=where, key=OBJECT_GRAPH_PROTO_KEY) from None

    def children(self, node_id: int) -> dict[str, int]:
        """``{local_name: node_id}`` of a node's children, in the stored order."""
        return {child.local_name: child.node_id for child in self._graph.children(node_id)}

    def descendants(self) -> list[int]:
        """Node ids reachable from node 0, breadth-first, each once (0 first)."""
        count = len(self._graph)
        seen = bytearray(count)
        order = [0]
        if count:
            seen[0] = 1
        head = 0
        while head < len(order):
            for child in self._graph.children(order[head]):
                if not seen[child.node_id]:
                    seen[child.node_id] = 1
                    order.append(child.node_id)
            head += 1
        return order

    def match(self, obj: Trackable) -> dict[int, Trackable]:
        """``{node_id: object}`` for the nodes that live objects under ``obj`` match by
        edge name, from node 0 = ``obj`` (TensorFlow's ``CheckpointView.match``)."""
        if not isinstance(obj, Trackable):
            raise InvalidArgumentError(f"Expected a Trackable, got {obj} of type {type(obj)}.")
        matched: dict[int, Trackable] = {0: obj}
        queue = deque([(0, obj)])
        visited: set[int] = set()
        while queue:
            node_id, current = queue.popleft()
            live = TrackableView.children(current)
            for name, child_id in self.children(node_id).items():
                if child_id in visited or child_id == 0 or name not in live:
                    continue
                assigned = matched.get(child_id)
                if assigned is None:
                    matched[child_id] = live[name]
                    queue.append((child_id, live[name]))
                elif assigned is not live[name]:
                    _LOG.warning(
                        "Inconsistent references when matching the checkpoint into this "
                        "object graph. The referenced objects are: (%s and %s).",
                        assigned,
                        live[name],
                    )
            visited.add(node_id)
        return matched

    def diff(self, obj: Trackable) -> tuple[dict[int, Trackable], list[int], list[Trackable]]:
        """``(matched, node ids only in the checkpoint, objects only in the live graph)``."""
        matched = self.match(obj)
        only_in_checkpoint = [n for n in self.descendants() if n not in matched]
        matched_ids = {id(o) for o in matched.values()}
        only_in_objects = [o for o in TrackableView(obj).descendants() if id(o) not in matched_ids]
        return matched, only_in_checkpoint, only_in_objects

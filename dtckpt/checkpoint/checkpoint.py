"""``Checkpoint``: ``tf.train.Checkpoint`` over dtckpt's trackables (rules O-CK-*).

``save`` = bump ``save_counter``, ``write`` to ``PREFIX-N``, update the
``checkpoint`` state file; ``write`` = just the bundle; ``read`` = match the
checkpoint's object graph to the live objects; ``restore`` = ``read`` plus
SavedModel directories and the ``save_counter``. Source:
``tensorflow/python/checkpoint/checkpoint.py``.

Every write is crash-safe (spec/durability.md): it holds the directory lock
from start to end (rule S-LK-1), first removes the temporaries that crashed
saves left behind (rule S-TP-2), writes the bundle atomically (rule S-AT-1),
fsynced unless ``CheckpointOptions(experimental_fsync=False)`` (rule S-AT-3),
and only then replaces the state file (rule S-ST-1). The write callbacks run
after the lock is released. Rule S-CR-1 lists what an interruption at each
step leaves behind.

Every write is also collective (spec/multiclient.md): when several processes
share a mesh, each calls ``save``/``write`` with the same arguments, writes
its own devices' data files, and the root writes the index
(:mod:`~dtckpt.checkpoint.collective_save`, rule P-SV-2); a lone process is
the one-client case of the same steps.
"""

from __future__ import annotations

import copy
import inspect
import os
import threading
import weakref
from concurrent.futures import Future
from typing import Any

import numpy as np

from ..archive.paths import split_archive_path
from ..comm import Communicator, world
from ..dtypes import info
from ..errors import (
    CheckpointError,
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from ..format.bundle_reader import BundleReader
from ..format.object_graph import ObjectGraphView
from ..pools import collect, io_threads, submit_save
from ..storage.urls import is_url
from ..storage.urls import resolve as resolve_url
from .collective_restore import RestoreSession
from .collective_save import graph_tensor, save_collectively
from .graph import OBJECT_GRAPH_PROTO_KEY, breadth_first, build_graph
from .module import AutoTrackable
from .options import CheckpointOptions
from .plans import ObjectReads, RestorePlan, check_budget, save_memory, schedule
from .reader import open_bundle, resolve_checkpoint_path, resolve_save_path
from .restore import CheckpointPosition, RestoreCoordinator
from .sharded import is_sharded
from .state import update_checkpoint_state
from .status import CheckpointLoadStatus, InitializationOnlyStatus, NameBasedSaverStatus
from .trackable import Trackable
from .variables import VARIABLE_VALUE_KEY, Variable

__all__ = ["Checkpoint", "add_variable", "plan_restore", "resolve_save_path"]

SAVE_COUNTER = "save_counter"


class Checkpoint(AutoTrackable):
    """Groups trackable objects and saves or restores them together, like ``tf.train.Checkpoint``.

    ``Checkpoint(root=None, **kwargs)``: keyword arguments become tracked
    attributes, set in sorted order. With ``root``, the root object itself is
    the checkpoint's node 0 and the keyword arguments are attached to it. ``root``
    may be a ``weakref.ref``: the checkpoint then never keeps the root alive
    (rule O-CK-7). ``copy.deepcopy`` copies the objects (rule O-CK-8).
    """

    #: Where non-DTensor values go in a DTensor save: their own bundle (False, as
    #: tf.train.Checkpoint) or device 0's (True, as DTensorCheckpoint).
    _regular_on_device_zero = False

    _self_root: Trackable | weakref.ref[Trackable] | None
    #: Attached dependencies by name; ``None`` stands for the root itself.
    _self_attached: dict[str, Trackable | None]
    _self_save_counter: Variable | None
    _self_pending: Future[None] | None

    def __init__(self, root: Trackable | None = None, **kwargs: Any) -> None:
        object.__setattr__(self, "_self_root", None)
        object.__setattr__(self, "_self_attached", {})
        object.__setattr__(self, "_self_save_counter", None)
        object.__setattr__(self, "_self_pending", None)
        object.__setattr__(self, "_self_lock", threading.Lock())
        trackable_root = root() if isinstance(root, weakref.ref) else root
        if root is not None:
            _assert_trackable(trackable_root, "root")
            assert trackable_root is not None
            object.__setattr__(self, "_self_root", root)
        # TF attaches the root to itself under "root" (a child edge to node 0), sorted
        # in among the keyword arguments (rule O-CK-1).
        entries = list(kwargs.items()) + ([("root", root)] if root is not None else [])
        for name, value in sorted(entries, key=lambda item: item[0]):
            if root is not None and name == "root" and value is root:
                self._self_attached["root"] = None  # the root, however it is held
                continue
            setattr(self, name, value)  # as in TF, also when a root is given
            value = getattr(self, name)
            _assert_trackable(value, name)
            if trackable_root is not None:
                existing = trackable_root._lookup_dependency(name)
                if existing is None:
                    self._attach(name, value)
                elif existing is not value:
                    raise ValueError(
                        f"Cannot create a Checkpoint with keyword argument {name} if "
                        f"root.{name} already exists."
                    )

    # -- structure -------------------------------------------------------------
    @property
    def root(self) -> Trackable:
        """The root object (node 0): the ``root`` given, or the checkpoint itself."""
        root = self._self_root
        if root is None:
            return self
        if isinstance(root, weakref.ref):
            obj = root()
            if obj is None:
                raise FailedPreconditionError(
                    "the root object of this Checkpoint, held by a weak reference, no longer exists"
                )
            return obj
        return root

    def _attach(self, name: str, value: Trackable) -> None:
        self._self_attached[name] = value
        root = self.root
        root._maybe_initialize_trackable()
        root._handle_deferred(name, value)

    def _attached(self) -> dict[str, Trackable]:
        root = self.root if None in self._self_attached.values() else None
        return {
            name: root if value is None else value  # type: ignore[misc]
            for name, value in self._self_attached.items()
        }

    def __deepcopy__(self, memo: dict[int, Any]) -> Checkpoint:
        """A checkpoint of deep copies of the objects (``tf.train.Checkpoint`` deep-copies).

        A pending write is waited for; the copy has its own lock and no pending write.
        A root held by a weak reference is copied and held strongly by the copy (the
        copy is then its only owner).
        """
        self._wait()
        copied: Checkpoint = type(self).__new__(type(self))
        memo[id(self)] = copied
        for name, value in vars(self).items():
            if name == "_self_lock":
                value = threading.Lock()
            elif name == "_self_pending":
                value = None
            elif name == "_self_root" and isinstance(value, weakref.ref):
                value = copy.deepcopy(value(), memo)
            else:
                value = copy.deepcopy(value, memo)
            object.__setattr__(copied, name, value)
        return copied

    @property
    def save_counter(self) -> Variable:
        """An int64 variable counting ``save()`` calls, created on first use (rule O-CK-2)."""
        self._maybe_create_save_counter()
        counter = self._self_save_counter
        assert counter is not None
        return counter

    def _maybe_create_save_counter(self) -> None:
        if self._self_save_counter is not None:
            return
        counter = Variable(np.int64(0), name=SAVE_COUNTER, dtype=np.int64, trainable=False)
        object.__setattr__(self, "_self_save_counter", counter)
        if self._self_root is None:
            self._track_trackable(counter, SAVE_COUNTER)
        else:
            self._attach(SAVE_COUNTER, counter)

    # -- saving ----------------------------------------------------------------
    def write(self, file_prefix: str, options: CheckpointOptions | None = None) -> str:
        """Write a checkpoint at exactly ``file_prefix``; no counter, no state file (O-CK-3)."""
        return self._write(os.fspath(file_prefix), options or CheckpointOptions(), None)

    def save(self, file_prefix: str, options: CheckpointOptions | None = None) -> str:
        """Bump ``save_counter``, write ``file_prefix-N``, record it in the state file (O-CK-3)."""
        options = options or CheckpointOptions()
        self._wait()
        counter = self.save_counter
        counter.assign_add(1)
        path = f"{os.fspath(file_prefix)}-{int(counter.numpy())}"
        fsync = options.experimental_fsync

        def record(saved: str) -> None:
            # Runs under the directory lock, once the bundle is in place (rule S-ST-1).
            update_checkpoint_state(
                os.path.dirname(os.fspath(file_prefix)), saved, [saved], fsync=fsync
            )

        return self._write(path, options, record)

    def _write(self, path: str, options: CheckpointOptions, after: Any, adopt: Any = None) -> str:
        """Write ``path`` with every client; ``after`` runs on the root under the lock and
        ``adopt`` receives its result on the other clients (rule P-SV-2)."""
        self._wait()
        snapshot = build_graph(self.root, self._attached())
        graph_bytes = snapshot.graph_bytes
        tensors = snapshot.tensors
        callbacks = list(options.experimental_write_callbacks)
        comm = world()
        if options.experimental_memory_budget is not None:  # rules R-MB-1, R-MB-3
            needed = save_memory(
                tensors, snapshot.stable, copies=options.enable_async, writers=io_threads()
            )
            check_budget(needed, options.experimental_memory_budget, "the save", path=path)
        if options.enable_async:
            # The files are written in the background, whose collectives travel on a
            # communicator of their own (rule P-AS-1). Values that can still change are
            # copied now; a variable's array is kept as it is (rule O-CK-10).
            tensors = [
                (key, _snapshot(value, stable))
                for (key, value), stable in zip(tensors, snapshot.stable, strict=True)
            ]
            comm = comm.background(timeout=options.experimental_collective_timeout)
        job = _WriteJob(
            path,
            tensors,
            graph_bytes,
            after,
            adopt,
            callbacks,
            self._regular_on_device_zero,
            options,
            comm,
        )
        if options.enable_async:
            object.__setattr__(self, "_self_pending", submit_save(job.run))  # rule S-AS-1
        else:
            job.run()
        return path

    def sync(self) -> None:
        """Wait for a background write; re-raise its error if it failed (rule O-CK-6)."""
        self._wait()

    def _wait(self) -> None:
        pending: Future[None] | None = self._self_pending
        if pending is not None:
            object.__setattr__(self, "_self_pending", None)
            collect(pending)

    # -- restoring -------------------------------------------------------------
    def read(self, save_path: str, options: CheckpointOptions | None = None) -> Any:
        """Restore the values of ``save_path`` into the objects; return a status (rule O-RS-1).

        Collective when several clients share the program: the root reads the
        index and sends each client what its devices need (rule P-RS-1).
        """
        self._wait()
        options = options or CheckpointOptions()
        path = os.fspath(save_path)
        if options.experimental_dry_run:
            return self._plan(path, options)
        session = RestoreSession(
            world(),
            path,
            options.experimental_collective_timeout,
            alone=split_archive_path(path) is not None,
        )
        if not session.reads_index:
            reader, raw = session.receive()
            if raw is None:
                return self._restore_by_name(reader, options)
            return self._read_graph(reader, raw, path, options, session)
        try:
            reader, raw = self._open_for_read(path)
        except Exception as exc:
            session.refuse(exc)
            raise
        if raw is None:
            session.share(reader, None, ())  # by name: every entry to every client
            return self._restore_by_name(reader, options)
        return self._read_graph(reader, raw, path, options, session)

    def _plan(self, path: str, options: CheckpointOptions) -> RestorePlan:
        """Rule R-PL-1: the plan ``read(path, options)`` would run, from the index alone.

        Every client plans its own devices, without a collective; nothing is bound,
        deferred, created or read.
        """
        reader, raw = self._open_for_read(path)
        with reader:
            if raw is None:
                planned: RestorePlan = self._restore_by_name(reader, options, dry_run=True)
                return planned
            graph = ObjectGraphView(raw)
            coordinator = RestoreCoordinator(
                reader,
                graph,
                path,
                root=self.root,
                attached=self._attached(),
                skip_slot_variables=options.experimental_skip_slot_variables,
                memory_budget=options.experimental_memory_budget,
                clients=world().size,
            )
            coordinator.expect_partial = True  # a plan warns about nothing
            walk = breadth_first(self.root, self._attached())
            live = (
                ("(root)" + "".join(f".{n}" for n in walk.path(i)), obj)
                for i, obj in enumerate(walk.objects)
            )
            return CheckpointPosition(coordinator, 0).plan(self.root, live)

    def _open_for_read(self, path: str) -> tuple[BundleReader, bytes | None]:
        """The bundle at ``path`` and its object graph's bytes (``None``: restore by name)."""
        in_archive = split_archive_path(path) is not None  # read in place (rule A-RD-2)
        if in_archive:
            path = resolve_checkpoint_path(path)
        elif not _index_exists(path):
            # TensorFlow's reader's words (rule O-CK-4), and what is missing.
            raise NotFoundError(
                "Unsuccessful TensorSliceReader constructor: Failed to find any matching "
                f"files for {path} ({path}.index does not exist)"
            )
        reader = open_bundle(path)
        if OBJECT_GRAPH_PROTO_KEY not in reader:
            return reader, None
        value = reader.read(OBJECT_GRAPH_PROTO_KEY)
        raw = value.item() if value.shape == () else None
        if not isinstance(raw, bytes):
            raise DataLossError(
                "the object graph entry is not a scalar string "
                f"({value.dtype} {list(value.shape)})",
                path=reader.index_path,
                key=OBJECT_GRAPH_PROTO_KEY,
            )
        return reader, raw

    def _read_graph(
        self,
        reader: BundleReader,
        raw: bytes,
        path: str,
        options: CheckpointOptions,
        session: RestoreSession,
    ) -> Any:
        def located(exc: CheckpointError) -> CheckpointError:
            return exc.located(path=reader.index_path, key=OBJECT_GRAPH_PROTO_KEY)

        try:
            try:
                graph = ObjectGraphView(raw)
            except DataLossError as exc:
                raise located(exc) from None
            coordinator = RestoreCoordinator(
                reader,
                graph,
                path,
                root=self.root,
                attached=self._attached(),
                skip_slot_variables=options.experimental_skip_slot_variables,
                on_error=located,
                memory_budget=options.experimental_memory_budget,
                clients=session.comm.size,
            )

            def share(step: Any) -> None:  # checked, not yet assigned: tell the others
                session.share(reader, raw, step.planned_reads())

            CheckpointPosition(coordinator, 0).restore(self.root, after_match=share)
        except Exception as exc:
            session.refuse(exc)
            raise
        return CheckpointLoadStatus(coordinator, self.root, self._attached)

    def restore(self, save_path: str | None, options: CheckpointOptions | None = None) -> Any:
        """``read`` plus SavedModel directories and ``save_counter`` (rule O-CK-4)."""
        if save_path is None:
            self._maybe_create_save_counter()
            return InitializationOnlyStatus()
        given = os.fspath(save_path)
        try:
            status = self.read(resolve_save_path(given), options)
        except NotFoundError as exc:
            # TensorFlow's wording around the reader's error (rule O-CK-4); the class
            # stays (a missing tensor is still a KeyError).
            raise type(exc)(
                f"Error when restoring from checkpoint or SavedModel at {given}: {exc}\n"
                "Please double-check that the path is correct. You may be missing the "
                "checkpoint suffix (e.g. the '-1' in 'path/to/ckpt-1')."
            ) from exc
        if not (options is not None and options.experimental_dry_run):
            self._maybe_create_save_counter()
        return status

    def _restore_by_name(
        self, reader: BundleReader, options: CheckpointOptions, *, dry_run: bool = False
    ) -> Any:
        """Rule O-RS-8: a checkpoint without object graph restores by variable name.

        Every variable whose name is a key takes that value (several variables
        may share a name); ``save_counter`` is optional, as TF1 checkpoints lack it.
        The values are planned, then read one at a time as planned (rules R-PL-1, R-MB-1);
        with ``dry_run`` the plan is returned instead.
        """
        keys = {k.decode("utf-8", "surrogateescape") for k in reader.keys()}
        used: set[str] = set()
        pending: list[Variable] = []
        missing = []
        for obj in breadth_first(self.root, self._attached()).objects:
            if not isinstance(obj, Variable):
                continue
            if obj.full_name in keys:
                # Checked from the index before any value is read (rule O-RS-6).
                entry = reader.entry(obj.full_name)
                problem = obj._restore_problem(
                    VARIABLE_VALUE_KEY, obj.full_name, info(entry.dtype).name, tuple(entry.shape)
                )
                if problem is not None:
                    raise InvalidArgumentError(
                        f"cannot restore {reader.prefix}: {obj.full_name}: {problem}",
                        key=obj.full_name,
                    )
                pending.append(obj)
                used.add(obj.full_name)
            elif obj is not self._self_save_counter:
                missing.append(obj.full_name)
        budget = options.experimental_memory_budget
        plans = schedule(
            pending,
            lambda obj, scratch, threads: _by_name_reads(reader, obj, scratch, threads),
            budget,
            what="the restore",
            path=reader.prefix,
        )
        if dry_run:
            return RestorePlan(
                reader.prefix,
                plans,
                unmatched=missing,
                unused=sorted(keys - used),
                budget=budget,
                clients=world().size,
            )
        for obj, plan in zip(pending, plans, strict=True):
            value = obj._read_checkpoint_value(
                reader, VARIABLE_VALUE_KEY, obj.full_name, plan.reads
            )
            obj._restore_from_tensors({VARIABLE_VALUE_KEY: value})
        return NameBasedSaverStatus(missing, sorted(keys - used))


def _by_name_reads(reader: BundleReader, obj: Variable, scratch: int, threads: int) -> ObjectReads:
    reads, at_once = obj._plan_checkpoint_read(
        reader, VARIABLE_VALUE_KEY, obj.full_name, target=obj.name, scratch=scratch, threads=threads
    )
    return ObjectReads(obj.name, tuple(reads), at_once)


def plan_restore(
    checkpoint: Checkpoint, save_path: str, options: CheckpointOptions | None = None
) -> RestorePlan:
    """What ``checkpoint.restore(save_path, options)`` would read and allocate, found without
    reading a value or changing an object (rule R-PL-1): ``restore`` with
    ``experimental_dry_run=True``. Under ``experimental_memory_budget`` a restore that
    cannot fit raises :class:`~dtckpt.errors.MemoryBudgetError` here too."""
    if not isinstance(checkpoint, Checkpoint):
        raise InvalidArgumentError(f"plan_restore needs a Checkpoint, got {checkpoint!r}")
    planned = copy.copy(options or CheckpointOptions())
    planned.experimental_dry_run = True
    plan: RestorePlan = checkpoint.restore(save_path, planned)
    return plan


def add_variable(
    trackable: Trackable,
    name: str,
    shape: Any = None,
    dtype: Any = np.float32,
    initializer: Any = None,
    trainable: bool = True,
) -> Variable:
    """Create a variable and track it on ``trackable`` as ``name`` (TensorFlow's internal
    ``checkpoint.add_variable``, rule O-CK-9); a restore waiting for ``name`` fills it at once.

    ``initializer`` is a value (then ``shape`` must be ``None``), an initializer class
    (instantiated with ``dtype``) or a callable ``(shape, dtype=...)``. Without one,
    floating-point variables are drawn from Glorot's uniform distribution (TensorFlow's
    default) and others are zeros. A name already taken is a ``ValueError`` (O-TR-5).
    """
    dtype = np.dtype(dtype)
    shape_list = None if shape is None else [int(d) for d in shape]
    if initializer is None:
        value = _default_initial_value(shape_list or [], dtype)
    elif not callable(initializer):
        if shape is not None:
            raise ValueError("If initializer is a constant, do not specify shape.")
        value = initializer
    else:
        if isinstance(initializer, type):
            initializer = initializer(dtype=dtype)
        value = initializer(shape_list, dtype=dtype)
    variable = Variable(value, name=name, dtype=dtype, trainable=trainable)
    trackable._track_trackable(variable, name=name)
    return variable


def _default_initial_value(shape: list[int], dtype: np.dtype[Any]) -> np.ndarray:
    """``glorot_uniform`` for floating point (fans as TensorFlow computes them), else zeros."""
    if dtype.kind != "f":
        return np.zeros(shape, dtype=dtype)
    if len(shape) < 1:
        fan_in = fan_out = 1
    elif len(shape) == 1:
        fan_in = fan_out = shape[0]
    else:
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = float(np.sqrt(6.0 / max(1, fan_in + fan_out)))
    return np.random.default_rng().uniform(-limit, limit, size=shape).astype(dtype)


def _assert_trackable(obj: Any, name: str) -> None:
    if not isinstance(obj, Trackable):
        raise ValueError(
            f"`Checkpoint` was expecting {name} to be a trackable object (an object derived "
            f"from `Trackable`), got {obj!r}. If you believe this object should be trackable "
            "(i.e. it is part of the TensorFlow Python API and manages state), please open "
            "an issue."
        )


def _snapshot(value: Any, stable: bool) -> Any:
    """What a background save keeps of ``value``: the value itself (in new containers, so
    that a restore sees it referenced and does not read into it) when its object never
    writes into it, else a copy (rule O-CK-10)."""
    if is_sharded(value):
        return value.shallow() if stable else value.copied()
    if stable and isinstance(value, np.ndarray):
        return value
    return np.array(value, copy=True)


class _WriteJob:
    def __init__(
        self,
        path: str,
        tensors: list[tuple[str, Any]],
        graph_bytes: bytes,
        after: Any,
        adopt: Any,
        callbacks: list[Any],
        regular_on_device_zero: bool,
        options: CheckpointOptions,
        comm: Communicator,
    ) -> None:
        self.path, self.tensors, self.graph_bytes = path, tensors, graph_bytes
        self.after, self.adopt, self.callbacks = after, adopt, callbacks
        self.regular_on_device_zero = regular_on_device_zero
        self.options = options
        self.comm = comm

    def run(self) -> None:
        # Rule O-GR-5: the object graph last. DTensors: one data file per device
        # holding blocks, every client writing its own (rules D-CK-1, P-SV-2).
        tensors, self.tensors = self.tensors, []  # kept no longer than the write (O-CK-10)
        result = save_collectively(
            self.path,
            [*tensors, (OBJECT_GRAPH_PROTO_KEY, graph_tensor(self.graph_bytes))],
            comm=self.comm,
            timeout=self.options.experimental_collective_timeout,
            regular_on_device_zero=self.regular_on_device_zero,
            writers=self.options.experimental_writers,
            fsync=self.options.experimental_fsync,
            after=self.after,  # the state file, manager deletions: root only, still locked
        )
        del tensors
        if self.comm.rank != 0 and self.adopt is not None:
            self.adopt(result)
        self._run_callbacks()

    def _run_callbacks(self) -> None:
        for callback in self.callbacks:
            if inspect.signature(callback).parameters:
                callback(self.path)
            else:
                callback()


def _index_exists(path: str) -> bool:
    """Whether ``path.index`` is there, on disk or in the store a URL names."""
    if is_url(path):
        store, key = resolve_url(path)
        return store.exists(key + ".index")
    return os.path.exists(path + ".index")

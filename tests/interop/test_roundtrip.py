"""Property tests: any tensors, any dtype, through each format and back, in many chunks."""

from __future__ import annotations

import itertools
import pathlib
from itertools import pairwise

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dtckpt
from dtckpt.format.bundle_writer import BundleWriter
from dtckpt.format.messages import BIG
from dtckpt.format.slices import format_shape_and_slice
from dtckpt.interop import convert, read_tensors
from tests.conftest import assert_same_array
from tests.format.strategies import NUMERIC, arrays

from .conftest import assert_same_checkpoints

# The dtypes the shared strategy leaves out, drawn as raw bytes valid for each.
EXTRA = ["qint8", "quint8", "qint16", "quint16", "qint32", "int2", "uint2", "float4_e2m1fn"]
keys = st.text(st.sampled_from("ab/._ Zé✓"), min_size=1, max_size=12)
settings_ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_counter = itertools.count()


@st.composite
def tensor(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    name = draw(st.sampled_from(NUMERIC + EXTRA + ["string"]))
    if name in EXTRA:
        row = dtckpt.dtypes.info(name)
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
        numel = int(np.prod(shape, dtype=np.int64))
        if name.startswith("q"):
            raw = draw(st.binary(min_size=numel * row.itemsize, max_size=numel * row.itemsize))
            return name, np.frombuffer(raw, dtype=row.numpy).reshape(shape).copy()
        lo, hi = {"int2": (-2, 1), "uint2": (0, 3), "float4_e2m1fn": (-6, 6)}[name]
        values = draw(st.lists(st.integers(lo, hi), min_size=numel, max_size=numel))
        return name, np.array(values, dtype=np.float64).astype(row.numpy).reshape(shape)
    value = draw(arrays(name))
    return name, value


def _save(path: pathlib.Path, tensors: dict[str, tuple[str, np.ndarray]]) -> str:
    prefix = str(path / "ckpt")
    dtckpt.save_v2(
        prefix,
        list(tensors),
        [""] * len(tensors),
        [v for _, v in tensors.values()],
        [d for d, _ in tensors.values()],
    )
    return prefix


def _fresh(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / str(next(_counter))
    path.mkdir()
    return path


@settings_
@given(st.dictionaries(keys, tensor(), min_size=1, max_size=5))
def test_checkpoint_npz_checkpoint(
    tmp_path: pathlib.Path, small_chunks: int, tensors: dict[str, tuple[str, np.ndarray]]
) -> None:
    path = _fresh(tmp_path)
    prefix = _save(path, tensors)
    there = convert(prefix, str(path / "x.npz"))
    back = convert(str(path / "x.npz"), str(path / "back" / "ckpt"))
    assert there.tensors == back.tensors == len(tensors) and there.bytes == back.bytes
    assert_same_checkpoints(prefix, str(path / "back" / "ckpt"))
    with dtckpt.load_checkpoint(str(path / "back" / "ckpt")) as reader:
        dtypes = {k: dtckpt.dtypes.info(d).enum for k, (d, _) in tensors.items()}
        assert {k: reader.bundle.entry(k).dtype for k in tensors} == dtypes


@settings_
@given(st.dictionaries(keys, tensor(), min_size=1, max_size=5))
def test_checkpoint_safetensors_checkpoint(
    tmp_path: pathlib.Path, small_chunks: int, tensors: dict[str, tuple[str, np.ndarray]]
) -> None:
    path = _fresh(tmp_path)
    prefix = _save(path, tensors)
    strings = tuple(sorted(k for k, (d, _) in tensors.items() if d == "string"))
    there = convert(prefix, str(path / "x.safetensors"), skip_unsupported=True)
    assert there.skipped == strings
    back = convert(str(path / "x.safetensors"), str(path / "back" / "ckpt"))
    assert there.tensors == back.tensors == len(tensors) - len(strings)
    if back.tensors:
        assert_same_checkpoints(prefix, str(path / "back" / "ckpt"), strings)


@settings_
@given(
    st.dictionaries(keys, tensor(), min_size=1, max_size=4), st.sampled_from(["npz", "safetensors"])
)
def test_streams_equal_the_whole_tensors(
    tmp_path: pathlib.Path,
    small_chunks: int,
    tensors: dict[str, tuple[str, np.ndarray]],
    suffix: str,
) -> None:
    """Each chunk is at most CHUNK_BYTES and together they are the tensor."""
    path = _fresh(tmp_path)
    prefix = _save(path, tensors)
    target = str(path / f"x.{suffix}")
    convert(prefix, target, skip_unsupported=True)
    for name in (prefix, target):
        with read_tensors(name) as source:
            for stream in source.tensors:
                pieces = list(stream.chunks())
                if not stream.dtype.is_string:
                    assert all(0 < p.nbytes <= max(small_chunks, p.itemsize) for p in pieces)
                    assert sum(p.nbytes for p in pieces) == stream.nbytes
                assert_same_array(stream.read(), tensors[stream.key][1], stream.key)


@st.composite
def partitioned(draw: st.DrawFn) -> tuple[np.ndarray, list[str]]:
    """A tensor and slice specs cutting it into a grid of boxes."""
    dtype = draw(st.sampled_from(["float32", "int64", "bfloat16", "bool", "complex128", "int4"]))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=1, max_size=3)))
    value = draw(arrays(dtype, shape))
    cuts = []
    for size in shape:
        points = sorted(draw(st.sets(st.integers(1, size - 1), max_size=2))) if size > 1 else []
        bounds = [0, *points, size]
        cuts.append([(a, b - a) for a, b in pairwise(bounds)])
    specs = [format_shape_and_slice(shape, box) for box in itertools.product(*cuts)]
    return value, specs


@settings_
@given(partitioned(), st.sampled_from(["npz", "safetensors"]))
def test_partitioned_tensors_are_written_whole(
    tmp_path: pathlib.Path, small_chunks: int, case: tuple[np.ndarray, list[str]], suffix: str
) -> None:
    value, specs = case
    path = _fresh(tmp_path)
    prefix = str(path / "ckpt")
    parts = []
    for spec in specs:
        boxes = [tuple(int(n) for n in item.split(",")) for item in spec.split(" ")[-1].split(":")]
        parts.append(value[tuple(slice(s, s + n) for s, n in boxes)])
    dtckpt.save_v2(prefix, ["w"] * len(specs), specs, parts)
    convert(prefix, str(path / f"x.{suffix}"))
    convert(str(path / f"x.{suffix}"), str(path / "back" / "ckpt"))
    with dtckpt.load_checkpoint(str(path / "back" / "ckpt")) as reader:
        assert reader.bundle.entry("w").slices == ()  # written whole
        assert_same_array(reader.get_tensor("w"), value, "w")


@settings_
@given(st.dictionaries(keys, tensor(), min_size=1, max_size=4))
def test_big_endian_bundles_convert_to_little_endian(
    tmp_path: pathlib.Path, small_chunks: int, tensors: dict[str, tuple[str, np.ndarray]]
) -> None:
    path = _fresh(tmp_path)
    prefix = str(path / "big")
    with BundleWriter(prefix, endianness=BIG) as writer:
        for key, (dtype, value) in tensors.items():
            writer.add(key, value, dtype)
    convert(prefix, str(path / "x.npz"))
    convert(str(path / "x.npz"), str(path / "back" / "ckpt"))
    with dtckpt.load_checkpoint(str(path / "back" / "ckpt")) as reader:
        assert reader.bundle.header.endianness == 0
        for key, (_, value) in tensors.items():
            assert_same_array(reader.get_tensor(key), value, key)


# NumPy's own dtypes, which numpy.savez and safetensors store natively.
PLAIN = [
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex64",
]


@settings_
@given(
    st.dictionaries(keys, st.sampled_from(PLAIN).flatmap(arrays), min_size=1, max_size=5),
    st.sampled_from(["savez", "savez_compressed", "safetensors"]),
)
def test_files_other_libraries_write_become_checkpoints(
    tmp_path: pathlib.Path, small_chunks: int, tensors: dict[str, np.ndarray], writer: str
) -> None:
    import safetensors.numpy

    path = _fresh(tmp_path)
    if writer == "safetensors":
        source = str(path / "x.safetensors")
        safetensors.numpy.save_file(tensors, source)
    else:
        source = str(path / "x.npz")
        getattr(np, writer)(source, **tensors)
    report = convert(source, str(path / "ckpt"))
    assert report.tensors == len(tensors) and report.skipped == ()
    with dtckpt.load_checkpoint(str(path / "ckpt")) as reader:
        assert sorted(reader.get_variable_to_shape_map()) == sorted(tensors)
        for key, value in tensors.items():
            assert_same_array(reader.get_tensor(key), value, key)

"""The fuzz harness itself: input shaping, finding signatures, and the long-run script.

A harness that silently repaired nothing, or swallowed every exception, would report a clean
run whatever the code did; these tests make sure it notices what it is meant to notice.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from dtckpt.errors import DataLossError
from dtckpt.format.index import BundleIndex
from dtckpt.format.strings import decode_string_tensor, encode_string_tensor
from dtckpt.format.table import decode_table
from tests.fuzz import known, targets
from tests.fuzz.budget import TracedPeak, allowance, check_input
from tests.fuzz.known import known_finding, signature
from tests.fuzz.seeds import GOLDEN, seeds
from tests.fuzz.shaping import (
    MUTATIONS,
    fix_string_checksums,
    fix_table_checksums,
    join_bundle_input,
    mutate,
    split_bundle_input,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_checksum_repair_lets_a_changed_entry_through() -> None:
    data = (GOLDEN / "dtypes" / "ckpt.index").read_bytes()
    items = decode_table(data)
    key, value = items[1]
    at = data.index(value)
    changed = bytearray(data)
    changed[at + value.index(b"\x12")] ^= 0  # a no-op first: repair keeps a valid table valid
    assert fix_table_checksums(bytes(changed)) == data
    changed[at] ^= 0x01  # the dtype tag of the first entry becomes a different field
    with pytest.raises(DataLossError, match="checksum"):
        decode_table(bytes(changed))
    repaired = decode_table(fix_table_checksums(bytes(changed)))
    assert repaired[1][0] == key and repaired[1][1] != value


def test_checksum_repair_leaves_what_it_cannot_follow() -> None:
    for data in (b"", b"\x00" * 47, b"\xff" * 100):
        assert fix_table_checksums(data) == data


def test_string_checksum_repair() -> None:
    chunks, crc, _ = encode_string_tensor([b"ab", b"", b"cde"])
    buf = b"".join(chunks)
    assert fix_string_checksums(buf, 3, big_endian=False) == (buf, crc)
    broken = b"\x01" + buf[1:]  # the first length changes: both checksums go stale
    fixed, fixed_crc = fix_string_checksums(broken, 3, big_endian=False)
    with pytest.raises(DataLossError):
        decode_string_tensor(fixed, 3, fixed_crc)  # the lengths no longer add up
    assert fixed[:3] == broken[:3] and fixed != broken


def test_bundle_input_round_trip() -> None:
    for index, data, use_mmap in ((b"", b"", False), (b"abc", b"\x00" * 9, True)):
        assert split_bundle_input(join_bundle_input(index, data, use_mmap=use_mmap)) == (
            index,
            data,
            use_mmap,
        )
    assert split_bundle_input(b"\x05\x00") == (b"\x05\x00", b"", False)
    assert split_bundle_input(b"\xff\xff\x00\x00xy") == (b"xy", b"", False)


def test_mutations_are_deterministic_and_change_bytes() -> None:
    seed = bytes(range(64))
    for op in MUTATIONS:
        ops = [(op, 10, 300)]
        assert mutate(seed, ops) == mutate(seed, ops)
        assert mutate(seed, ops) != seed, op
    assert mutate(b"", [("flip", 3, 1), ("insert", 0, 65)]) == b"A"


def test_every_target_has_seeds() -> None:
    for name in targets.TARGETS:
        assert len(seeds(name)) > 1, name


def test_a_crash_in_a_decoder_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes, path: str) -> None:
        raise IndexError("index out of range")

    monkeypatch.setattr(targets, "BundleIndex", broken)
    seed = seeds("index")[1]
    with pytest.raises(IndexError) as info:
        targets.run(targets.TARGETS["index"], seed)
    assert signature(info.value) == "IndexError at test_harness.py:broken"
    assert known_finding("index", info.value) is None


def test_a_typed_error_is_an_outcome_not_a_finding() -> None:
    outcome = targets.run(targets.TARGETS["index"], b"\x00" * 10)
    assert isinstance(outcome, DataLossError)
    assert outcome.path == targets.INDEX_PATH


def test_an_error_without_the_file_name_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    def unlocated(data: bytes, path: str) -> BundleIndex:
        raise DataLossError("damaged")

    monkeypatch.setattr(targets, "BundleIndex", unlocated)
    with pytest.raises(AssertionError, match="does not name"):
        targets.run(targets.TARGETS["index"], seeds("index")[1])


def test_known_findings_are_counted_by_the_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes, path: str) -> None:
        raise IndexError("index out of range")

    monkeypatch.setattr(targets, "BundleIndex", broken)
    seed = seeds("index")[1]
    with pytest.raises(IndexError):
        check_input(targets.TARGETS["index"], seed)
    listed = known.Known("index", "IndexError at test_harness.py:broken", "here", "none", ())
    monkeypatch.setattr(known, "KNOWN", (listed,))
    check_input(targets.TARGETS["index"], seed)  # listed: counted, not failed
    with pytest.raises(IndexError) as info:
        targets.run(targets.TARGETS["index"], seed)
    assert known.known_finding("index", info.value) is listed
    assert known.known_finding("table", info.value) is None


def test_traced_peak_sees_numpy_buffers() -> None:
    import numpy as np

    with TracedPeak() as traced:
        buffer = np.ones(1 << 22, dtype=np.uint8)
        del buffer
    assert 1 << 22 <= traced.peak < 1 << 23
    assert allowance(0) < allowance(1)


@pytest.mark.parametrize("engine", ["hypothesis", "atheris"])
def test_long_run_script(engine: str, tmp_path: pathlib.Path) -> None:
    if engine == "atheris":
        pytest.importorskip("atheris")  # the script falls back to hypothesis without it
    command = [sys.executable, str(ROOT / "tests" / "stress" / "fuzz_long.py")]
    command += ["--target", "slices", "--runs", "300", "--engine", engine]
    command += ["--workdir", str(tmp_path), "--sample-every", "7"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "slices" in result.stdout and "total executions" in result.stdout
    stats = json.loads((tmp_path / "stats-slices.json").read_text())
    assert stats["executions"] >= 300 and stats["findings"] == {}
    assert stats["sampled"] >= 300 // 7

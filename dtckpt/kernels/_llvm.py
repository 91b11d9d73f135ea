"""Numba intrinsics the kernels need and Numba does not offer: a raw ``memcpy`` between two
byte arrays, an unaligned little-endian 64-bit load, and the SSE4.2 ``crc32`` instruction.

The callers in ``jit`` check every offset before these run; the intrinsics themselves do no
bounds checking. ``HAVE_SSE42`` says whether the host CPU has the CRC instruction; code that
uses ``crc32_u64``/``crc32_u8`` must only be compiled when it is true, otherwise LLVM cannot
select the instruction.
"""

from __future__ import annotations

from typing import Any

import llvmlite.binding as llvm_binding
from llvmlite import ir
from numba.core import cgutils, config, types
from numba.extending import intrinsic


def _target_has_sse42() -> bool:
    """Whether the CPU Numba compiles for has SSE4.2 (``NUMBA_CPU_NAME`` may name another one)."""
    if config.CPU_NAME in (None, "host"):
        features = llvm_binding.get_host_cpu_features().flatten()
    else:
        features = config.CPU_FEATURES or ""
    return "+sse4.2" in features.split(",")


HAVE_SSE42 = _target_has_sse42()

_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def _byte_pointer(context: Any, builder: Any, arrty: Any, arr: Any, offset: Any) -> Any:
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.gep(data, [offset])


@intrinsic  # type: ignore[untyped-decorator]
def memcpy(typingctx: Any, dst: Any, dst_off: Any, src: Any, src_off: Any, nbytes: Any) -> Any:
    """``dst[dst_off:dst_off+nbytes] = src[src_off:src_off+nbytes]`` as one ``llvm.memcpy``."""
    sig = types.void(dst, types.int64, src, types.int64, types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        d, doff, s, soff, n = args
        dptr = _byte_pointer(context, builder, signature.args[0], d, doff)
        sptr = _byte_pointer(context, builder, signature.args[2], s, soff)
        cgutils.raw_memcpy(builder, dptr, sptr, n, 1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def load_u64(typingctx: Any, arr: Any, offset: Any) -> Any:
    """The 8 bytes at ``arr[offset:offset+8]`` as a little-endian uint64, at any alignment."""
    sig = types.uint64(arr, types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ptr = _byte_pointer(context, builder, signature.args[0], args[0], args[1])
        load = builder.load(builder.bitcast(ptr, _I64.as_pointer()), align=1)
        return load

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def crc32_u64(typingctx: Any, crc: Any, word: Any) -> Any:
    """One SSE4.2 ``crc32`` step over 8 bytes (raw register, no inversion)."""
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fnty = ir.FunctionType(_I64, [_I64, _I64])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse42.crc32.64.64")
        return builder.call(fn, list(args))

    return sig, codegen


@intrinsic  # type: ignore[untyped-decorator]
def crc32_u8(typingctx: Any, crc: Any, byte: Any) -> Any:
    """One SSE4.2 ``crc32`` step over 1 byte (raw register, no inversion)."""
    sig = types.uint64(types.uint64, types.uint8)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fnty = ir.FunctionType(_I32, [_I32, _I8])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse42.crc32.32.8")
        out = builder.call(fn, [builder.trunc(args[0], _I32), args[1]])
        return builder.zext(out, _I64)

    return sig, codegen

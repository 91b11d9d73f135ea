"""Pure helpers that both kernel backends run: the NumPy reference calls them as Python, and
``jit`` compiles the very same functions with ``numba.extending.register_jitable``, so each
algorithm is written once.

They use only what Numba's nopython mode accepts: integers, loops and int64 NumPy arrays.
Values stay below 2**63 so that Python ints and Numba int64 give identical results.

CRC-32C arithmetic (RFC 3720 section B.4; TF ``tsl/platform/crc32c``): a CRC register is a
polynomial over GF(2) of degree < 32 stored *reflected*, bit 31 holding the coefficient of
x^0 and bit 0 that of x^31. The CRC of A+B is ``crc(A) * x^(8*len(B)) + crc(B) mod P``, which
holds for the pre- and post-inverted CRC too because the inversions cancel in the sum.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: The Castagnoli polynomial 0x1EDC6F41, bit-reflected.
CRC32C_POLY = 0x82F63B78
#: x^0 in the reflected representation.
X0 = 0x80000000


def multmodp(a: int, b: int) -> int:
    """Return a * b mod P for reflected 32-bit polynomials.

    Walks the terms of ``a`` from x^0 upwards while ``b`` is multiplied by x each step, so it
    needs at most 32 shift-and-xor rounds.
    """
    m = X0
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                return p
        m >>= 1
        if b & 1:
            b = (b >> 1) ^ CRC32C_POLY
        else:
            b >>= 1
        if m == 0:
            return p


def xpow8n_table() -> npt.NDArray[np.int64]:
    """Return ``t`` with ``t[k] = x^(8 * 2**k) mod P`` for k < 64, the squarings that
    ``xpow8n`` multiplies together; 64 entries cover every byte count below 2**64."""
    table = np.zeros(64, dtype=np.int64)
    table[0] = X0 >> 8  # x^8
    for k in range(1, 64):
        table[k] = multmodp(int(table[k - 1]), int(table[k - 1]))
    return table


def xpow8n(n: int, table: npt.NDArray[np.int64]) -> int:
    """Return x^(8n) mod P, the operator that appends n zero bytes to a CRC register."""
    p = X0
    k = 0
    while n:
        if n & 1:
            p = multmodp(int(table[k]), p)
        n >>= 1
        k += 1
    return p


def combine(crc_a: int, crc_b: int, len_b: int, table: npt.NDArray[np.int64]) -> int:
    """Return the CRC-32C of A+B from crc(A), crc(B) and len(B) (zlib's crc32_combine)."""
    return multmodp(xpow8n(len_b, table), crc_a) ^ crc_b


def plan_box(
    src_shape: npt.NDArray[np.int64],
    src_origin: npt.NDArray[np.int64],
    dst_shape: npt.NDArray[np.int64],
    dst_origin: npt.NDArray[np.int64],
    extent: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], int, int, int]:
    """Reduce a validated, non-empty box copy to as few loops of contiguous runs as possible.

    Returns ``(counts, src_steps, dst_steps, run, src_base, dst_base)``: the copy is ``run``
    contiguous bytes at ``src_base + sum(i * src_steps)`` -> ``dst_base + sum(i * dst_steps)``
    for every index ``i`` below ``counts`` (outermost first). Axes of extent 1 become part of
    the base offsets; trailing axes covered in full on both sides lengthen the run; adjacent
    loop axes that tile each other exactly on both sides become one loop.
    """
    rank = extent.shape[0]
    counts = np.empty(rank, dtype=np.int64)
    src_steps = np.empty(rank, dtype=np.int64)
    dst_steps = np.empty(rank, dtype=np.int64)
    n = 0
    run = 1
    contiguous = True
    src_stride = 1
    dst_stride = 1
    src_base = 0
    dst_base = 0
    for axis in range(rank - 1, -1, -1):
        e = extent[axis]
        src_base += src_origin[axis] * src_stride
        dst_base += dst_origin[axis] * dst_stride
        if e != 1:
            if contiguous and src_stride == run and dst_stride == run:
                run *= e
            else:
                contiguous = False
                if (
                    n > 0
                    and src_steps[n - 1] * counts[n - 1] == src_stride
                    and dst_steps[n - 1] * counts[n - 1] == dst_stride
                ):
                    counts[n - 1] *= e
                else:
                    counts[n] = e
                    src_steps[n] = src_stride
                    dst_steps[n] = dst_stride
                    n += 1
        src_stride *= src_shape[axis]
        dst_stride *= dst_shape[axis]
    return (
        counts[:n][::-1].copy(),
        src_steps[:n][::-1].copy(),
        dst_steps[:n][::-1].copy(),
        int(run),
        int(src_base),
        int(dst_base),
    )

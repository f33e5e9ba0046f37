"""libjpeg's accurate integer inverse DCT ("islow", jidctint.c), vectorized.

The arithmetic follows ``jpeg_idct_islow`` of libjpeg-turbo 3.x. Constants are
scaled by 2**13 (CONST_BITS), and pass-1 outputs are scaled by 2**2
(PASS1_BITS) and stored as 32-bit ``int``. DESCALE rounds by adding half
before an arithmetic shift. The post-IDCT range-limit table wraps values
modulo 1024 before it clamps. The shortcuts for all-zero AC columns and rows
in jidctint.c give the same results as the full computation, so this module
omits them.

NOTE: Pillow's libjpeg-turbo runs a SIMD version of this IDCT on x86-64
(SSE2, AVX2) and Arm (NEON). It keeps dequantized values and pass-1 results
in 16 bits and clamps the output instead of wrapping it. Both agree while
dequantized coefficients fit 16 bits and samples stay within -384..639, which
no test file encoded from 8-bit pixels with 8-bit tables exceeds. For crafted
coefficients beyond that range this model equals libjpeg-turbo's C path,
which Pillow uses when ``JSIMD_FORCENONE=1`` is set.
"""

from __future__ import annotations

import numpy as np

CONST_BITS = 13
PASS1_BITS = 2

FIX_0_298631336 = 2446
FIX_0_390180644 = 3196
FIX_0_541196100 = 4433
FIX_0_765366865 = 6270
FIX_0_899976223 = 7373
FIX_1_175875602 = 9633
FIX_1_501321110 = 12299
FIX_1_847759065 = 15137
FIX_1_961570560 = 16069
FIX_2_053119869 = 16819
FIX_2_562915447 = 20995
FIX_3_072711026 = 25172

# Blocks per chunk, which bounds the int64 temporaries at about 40 MB.
_CHUNK_BLOCKS = 8192


def _descale(value: np.ndarray, bits: int) -> np.ndarray:
    return (value + (1 << (bits - 1))) >> bits


def _idct_1d(x: list[np.ndarray], bits: int) -> list[np.ndarray]:
    """Run one 8-point pass on inputs ``x[0..7]`` and descale by ``bits``."""
    z2, z3 = x[2], x[6]
    z1 = (z2 + z3) * FIX_0_541196100
    tmp2 = z1 + z3 * -FIX_1_847759065
    tmp3 = z1 + z2 * FIX_0_765366865

    tmp0 = (x[0] + x[4]) << CONST_BITS
    tmp1 = (x[0] - x[4]) << CONST_BITS

    tmp10 = tmp0 + tmp3
    tmp13 = tmp0 - tmp3
    tmp11 = tmp1 + tmp2
    tmp12 = tmp1 - tmp2

    tmp0, tmp1, tmp2, tmp3 = x[7], x[5], x[3], x[1]
    z1 = tmp0 + tmp3
    z2 = tmp1 + tmp2
    z3 = tmp0 + tmp2
    z4 = tmp1 + tmp3
    z5 = (z3 + z4) * FIX_1_175875602

    tmp0 = tmp0 * FIX_0_298631336
    tmp1 = tmp1 * FIX_2_053119869
    tmp2 = tmp2 * FIX_3_072711026
    tmp3 = tmp3 * FIX_1_501321110
    z1 = z1 * -FIX_0_899976223
    z2 = z2 * -FIX_2_562915447
    z3 = z3 * -FIX_1_961570560 + z5
    z4 = z4 * -FIX_0_390180644 + z5

    tmp0 = tmp0 + z1 + z3
    tmp1 = tmp1 + z2 + z4
    tmp2 = tmp2 + z2 + z3
    tmp3 = tmp3 + z1 + z4

    return [
        _descale(tmp10 + tmp3, bits),
        _descale(tmp11 + tmp2, bits),
        _descale(tmp12 + tmp1, bits),
        _descale(tmp13 + tmp0, bits),
        _descale(tmp13 - tmp0, bits),
        _descale(tmp12 - tmp1, bits),
        _descale(tmp11 - tmp2, bits),
        _descale(tmp10 - tmp3, bits),
    ]


def _range_limit(values: np.ndarray) -> np.ndarray:
    """Apply libjpeg's post-IDCT range-limit table to level-shifted values.

    The table index is ``value & 1023``: indices 0..511 are 0..511 and
    512..1023 are -512..-1, then 128 is added and the result clamped to
    0..255. Values beyond +-512 therefore wrap, as in jidctint.c.
    """
    wrapped = ((values + 512) & 1023) - 512
    return np.clip(wrapped + 128, 0, 255).astype(np.uint8)


def _idct_chunk(coefficients: np.ndarray, multipliers: np.ndarray) -> np.ndarray:
    blocks = coefficients.astype(np.int64).reshape(-1, 8, 8) * multipliers
    # Pass 1 transforms columns: input k is coefficient row k of every column.
    workspace = _idct_1d([blocks[:, k, :] for k in range(8)], CONST_BITS - PASS1_BITS)
    # The workspace is a C int array, so pass-1 results wrap to 32 bits.
    rows = np.stack(workspace, axis=1).astype(np.int32).astype(np.int64)
    # Pass 2 transforms rows: input k is workspace column k of every row.
    samples = _idct_1d([rows[:, :, k] for k in range(8)], CONST_BITS + PASS1_BITS + 3)
    return _range_limit(np.stack(samples, axis=2))


def idct_islow(coefficients: np.ndarray, quant_table: tuple[int, ...] | np.ndarray) -> np.ndarray:
    """Dequantize and inverse-transform blocks of quantized coefficients.

    ``coefficients`` has shape (..., 64) in natural order and int16 values.
    ``quant_table`` contains 64 values in natural order. Returns uint8 samples
    of shape (..., 8, 8).

    libjpeg-turbo stores quantization values as 16-bit ``short``
    (ISLOW_MULT_TYPE), so values above 32767 wrap negative, as they do here.
    """
    coefficients = np.asarray(coefficients)
    leading_shape = coefficients.shape[:-1]
    flat = coefficients.reshape(-1, 64)
    multipliers = (
        np.asarray(quant_table, dtype=np.int64).astype(np.int16).astype(np.int64).reshape(8, 8)
    )
    output = np.empty((flat.shape[0], 8, 8), dtype=np.uint8)
    for start in range(0, flat.shape[0], _CHUNK_BLOCKS):
        stop = start + _CHUNK_BLOCKS
        output[start:stop] = _idct_chunk(flat[start:stop], multipliers)
    return output.reshape(*leading_shape, 8, 8)

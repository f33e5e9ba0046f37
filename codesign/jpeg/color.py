"""Chroma upsampling and YCbCr to RGB conversion as libjpeg-turbo 3.x decodes.

Upsampling follows ``jinit_upsampler`` in jdsample.c with its default
``do_fancy_upsampling``: a triangle filter for 2:1 ratios (h2v1, h1v2 and
h2v2 "fancy" upsampling) and sample replication for other integer ratios.
libjpeg-turbo replicates the edge samples of the component beyond its
``downsampled_width`` and ``downsampled_height`` (jdmainct.c duplicates the
first and last sample rows as context), so the filter below pads the same
way. Merged upsampling (jdmerge.c) is used only without fancy upsampling,
which is not libjpeg's default and therefore not modelled.

Colour conversion follows ``ycc_rgb_convert`` in jdcolor.c: 16-bit
fixed-point tables with the rounding constant folded into the Cb tables.
"""

from __future__ import annotations

import numpy as np

SCALEBITS = 16
ONE_HALF = 1 << (SCALEBITS - 1)


def _fix(value: float) -> int:
    return int(value * (1 << SCALEBITS) + 0.5)


def _build_ycc_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x = np.arange(256, dtype=np.int64) - 128
    cr_r = (_fix(1.40200) * x + ONE_HALF) >> SCALEBITS
    cb_b = (_fix(1.77200) * x + ONE_HALF) >> SCALEBITS
    cr_g = -_fix(0.71414) * x
    cb_g = -_fix(0.34414) * x + ONE_HALF
    return cr_r, cb_b, cr_g, cb_g


_CR_R, _CB_B, _CR_G, _CB_G = _build_ycc_tables()


def _replicate_neighbours(plane: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the previous and next sample along ``axis``, edges replicated."""
    padded = np.concatenate(
        [np.take(plane, [0], axis=axis), plane, np.take(plane, [-1], axis=axis)], axis=axis
    )
    count = plane.shape[axis]
    previous = np.take(padded, np.arange(0, count), axis=axis)
    following = np.take(padded, np.arange(2, count + 2), axis=axis)
    return previous, following


def _interleave(first: np.ndarray, second: np.ndarray, axis: int) -> np.ndarray:
    stacked = np.stack([first, second], axis=axis + 1)
    shape = list(first.shape)
    shape[axis] *= 2
    return stacked.reshape(shape)


def upsample_h2v1_fancy(plane: np.ndarray) -> np.ndarray:
    """Double the width with the triangle filter of ``h2v1_fancy_upsample``."""
    samples = plane.astype(np.int32)
    left, right = _replicate_neighbours(samples, axis=1)
    even = (3 * samples + left + 1) >> 2
    odd = (3 * samples + right + 2) >> 2
    return _interleave(even, odd, axis=1).astype(np.uint8)


def upsample_h1v2_fancy(plane: np.ndarray) -> np.ndarray:
    """Double the height with the triangle filter of ``h1v2_fancy_upsample``."""
    samples = plane.astype(np.int32)
    above, below = _replicate_neighbours(samples, axis=0)
    upper = (3 * samples + above + 1) >> 2
    lower = (3 * samples + below + 2) >> 2
    return _interleave(upper, lower, axis=0).astype(np.uint8)


def upsample_h2v2_fancy(plane: np.ndarray) -> np.ndarray:
    """Double both sizes with the triangle filter of ``h2v2_fancy_upsample``.

    Each output row first sums 3/4 of the nearest input row and 1/4 of the
    next nearest one, then filters those column sums horizontally with the
    rounding biases 8 (left output) and 7 (right output).
    """
    samples = plane.astype(np.int32)
    above, below = _replicate_neighbours(samples, axis=0)
    output_rows = []
    for column_sums in (3 * samples + above, 3 * samples + below):
        left, right = _replicate_neighbours(column_sums, axis=1)
        even = (3 * column_sums + left + 8) >> 4
        odd = (3 * column_sums + right + 7) >> 4
        output_rows.append(_interleave(even, odd, axis=1))
    return _interleave(output_rows[0], output_rows[1], axis=0).astype(np.uint8)


def upsample_component(
    plane: np.ndarray, h_ratio: int, v_ratio: int, height: int, width: int
) -> np.ndarray:
    """Upsample a component plane by integer ratios and crop it to the image.

    ``plane`` must already be cropped to the component's downsampled size.
    The method choice repeats jdsample.c: fancy h2v1 and h2v2 need a
    downsampled width above 2 samples, otherwise replication is used.
    """
    downsampled_width = plane.shape[1]
    if (h_ratio, v_ratio) == (1, 1):
        result = plane
    elif (h_ratio, v_ratio) == (2, 1) and downsampled_width > 2:
        result = upsample_h2v1_fancy(plane)
    elif (h_ratio, v_ratio) == (1, 2):
        result = upsample_h1v2_fancy(plane)
    elif (h_ratio, v_ratio) == (2, 2) and downsampled_width > 2:
        result = upsample_h2v2_fancy(plane)
    else:
        result = np.repeat(np.repeat(plane, v_ratio, axis=0), h_ratio, axis=1)
    return result[:height, :width]


def ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """Convert full-size uint8 Y, Cb and Cr planes to an (H, W, 3) RGB array."""
    luma = y.astype(np.int64)
    cb_index = cb.astype(np.intp)
    cr_index = cr.astype(np.intp)
    red = luma + _CR_R[cr_index]
    green = luma + ((_CB_G[cb_index] + _CR_G[cr_index]) >> SCALEBITS)
    blue = luma + _CB_B[cb_index]
    return np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)

"""Bit-exact numpy model of the hardware JPEG decoder.

``decode_jpeg`` returns the same pixels as
``np.asarray(Image.open(f).convert("RGB"))`` (``"L"`` for greyscale) with
the libjpeg-turbo that Pillow 13 bundles, for every sequential Huffman JPEG
that ``parse_jpeg`` accepts. The exception is crafted coefficient data that
reconstructs samples far outside 0..255 (see the note in ``idct``). The stages are the ones the FPGA implements:
Huffman decoding with DC prediction, dequantization and the islow integer
IDCT, fancy chroma upsampling and fixed-point YCbCr to RGB conversion.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
from PIL import Image

from codesign.jpeg.color import upsample_component, ycbcr_to_rgb
from codesign.jpeg.entropy import component_blocks, component_size, decode_coefficients
from codesign.jpeg.idct import idct_islow
from codesign.jpeg.markers import ParsedJpeg, input_error, parse_jpeg


def _max_pixels() -> int:
    # Pillow raises DecompressionBombError above twice MAX_IMAGE_PIXELS.
    limit = Image.MAX_IMAGE_PIXELS
    return 2 * limit if limit else 0


def component_planes(parsed: ParsedJpeg, name: str | None = None) -> list[np.ndarray]:
    """Decode every component to uint8 samples at its downsampled size.

    Each plane has the (height, width) that ``component_size`` returns: the
    IDCT output of all blocks, cropped to the samples that belong to the
    image.
    """
    frame = parsed.frame
    limit = _max_pixels()
    if limit and frame.width * frame.height > limit:
        raise input_error(
            name,
            f"image size {frame.width}x{frame.height} exceeds the limit of {limit} pixels "
            "(PIL.Image.MAX_IMAGE_PIXELS times 2)",
        )
    coefficients = decode_coefficients(frame, parsed.scans, name)
    planes = []
    for index, blocks in enumerate(coefficients):
        rows, columns = component_blocks(frame)[index]
        samples = idct_islow(blocks, frame.quant_tables[index])
        plane = samples.transpose(0, 2, 1, 3).reshape(rows * 8, columns * 8)
        height, width = component_size(frame, index)
        planes.append(plane[:height, :width])
    return planes


def decode_parsed(parsed: ParsedJpeg, name: str | None = None) -> np.ndarray:
    """Decode a parsed JPEG to pixels: (H, W) for greyscale, else (H, W, 3) RGB."""
    frame = parsed.frame
    planes = component_planes(parsed, name)
    full_size = []
    for component, plane in zip(frame.components, planes):
        full_size.append(
            upsample_component(
                plane,
                frame.max_h_sampling // component.h_sampling,
                frame.max_v_sampling // component.v_sampling,
                frame.height,
                frame.width,
            )
        )
    if frame.color_transform == "gray":
        return np.ascontiguousarray(full_size[0])
    if frame.color_transform == "rgb":
        return np.stack(full_size, axis=-1)
    return ycbcr_to_rgb(*full_size)


def decode_jpeg(data: bytes, name: str | None = None) -> np.ndarray:
    """Decode JPEG file bytes to a uint8 array exactly as Pillow 13 does.

    Returns (H, W) for greyscale files and (H, W, 3) RGB otherwise. ``name``
    prefixes error messages. Raises ``InputError`` for malformed, truncated
    or corrupt data and for JPEG features the hardware decoder lacks.
    """
    return decode_parsed(parse_jpeg(data, name), name)


def read_jpeg(path: str | PathLike[str]) -> np.ndarray:
    """Read and decode a JPEG file, naming the file in error messages."""
    path = Path(path)
    return decode_jpeg(path.read_bytes(), path.name)

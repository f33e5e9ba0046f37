"""Baseline JPEG encoder for the host side, built on Pillow (libjpeg-turbo).

``JpegSettings`` fixes everything the FPGA decoder must know in advance
except the Huffman tables: quality or explicit quantization tables, chroma
subsampling and the restart interval. ``encode_jpeg`` always writes a
baseline (SOF0) sequential file, which ``codesign.jpeg.decode`` models.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from codesign.errors import InputError

# Pillow's values for its ``subsampling`` save option.
SUBSAMPLING_CODES = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
SUBSAMPLINGS = (*SUBSAMPLING_CODES, "gray")


@dataclass(frozen=True)
class JpegSettings:
    """Encoder setting that defines one stream format.

    ``quality`` (1..100) selects libjpeg's scaled standard tables, clamped to
    8 bits. ``qtables`` replaces them with explicit tables in natural
    (row-major) order, written unscaled, so ``quality`` must then be None.
    Colour images take one table (shared) or two (luminance, chrominance);
    greyscale images take one. Values must be 1..255, which keeps the file
    baseline. ``subsampling`` is ``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"`` or
    ``"gray"`` (one component). ``optimize`` makes libjpeg compute Huffman
    tables per image instead of using the standard ones, so the tables then
    differ between images. ``restart_interval`` is the number of MCUs between
    RSTn markers, 0 for none.
    """

    quality: int | None = 90
    subsampling: str = "4:2:0"
    qtables: tuple[tuple[int, ...], ...] | None = None
    optimize: bool = False
    restart_interval: int = 0

    def __post_init__(self) -> None:
        if self.subsampling not in SUBSAMPLINGS:
            raise InputError(
                f"invalid subsampling {self.subsampling!r}; expected one of {', '.join(SUBSAMPLINGS)}"
            )
        if self.qtables is None:
            if self.quality is None or not 1 <= self.quality <= 100:
                raise InputError(f"invalid quality {self.quality!r}; expected an integer 1..100")
        else:
            if self.quality is not None:
                raise InputError("quality must be None when qtables is set, because Pillow would scale the tables by it")
            tables = tuple(tuple(int(value) for value in table) for table in self.qtables)
            max_tables = 1 if self.subsampling == "gray" else 2
            if not 1 <= len(tables) <= max_tables:
                raise InputError(f"invalid qtables: expected 1..{max_tables} tables, got {len(tables)}")
            for table in tables:
                if len(table) != 64:
                    raise InputError(f"invalid qtables: a table has {len(table)} values instead of 64")
                if not all(1 <= value <= 255 for value in table):
                    raise InputError("invalid qtables: baseline JPEG needs values 1..255")
            object.__setattr__(self, "qtables", tables)
        if not 0 <= self.restart_interval <= 0xFFFF:
            raise InputError(f"invalid restart_interval {self.restart_interval}; expected 0..65535")

    @property
    def components(self) -> int:
        """Number of colour components in the encoded file."""
        return 1 if self.subsampling == "gray" else 3


def _to_pillow(image: np.ndarray | Image.Image, settings: JpegSettings) -> Image.Image:
    """Convert the input to the Pillow mode that the setting encodes."""
    if not isinstance(image, Image.Image):
        array = np.asarray(image)
        if array.dtype != np.uint8:
            raise InputError(f"invalid image dtype {array.dtype}; expected uint8")
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
            raise InputError(f"invalid image shape {array.shape}; expected (H, W) or (H, W, 3)")
        image = Image.fromarray(array)
    mode = "L" if settings.subsampling == "gray" else "RGB"
    # Pillow converts RGB to L with ITU-R 601-2 luma weights.
    return image if image.mode == mode else image.convert(mode)


def encode_jpeg(image: np.ndarray | Image.Image, settings: JpegSettings) -> bytes:
    """Encode an image as a baseline JPEG file with the given setting.

    ``image`` is a uint8 array of shape (H, W) or (H, W, 3), or a Pillow
    image. It is converted to greyscale or RGB as the setting requires, so
    every image of a data set gets the same stream format.
    """
    pillow_image = _to_pillow(image, settings)
    options: dict[str, object] = {
        "optimize": settings.optimize,
        "progressive": False,
        "restart_marker_blocks": settings.restart_interval,
    }
    if settings.qtables is not None:
        options["qtables"] = [list(table) for table in settings.qtables]
    else:
        options["quality"] = settings.quality
    if settings.subsampling != "gray":
        options["subsampling"] = SUBSAMPLING_CODES[settings.subsampling]
    buffer = io.BytesIO()
    pillow_image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()

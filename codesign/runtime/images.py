"""Image loading and the letterbox resize from any image size to the model's input size.

Letterbox rule: scale the image by ``min(W_model / W, H_model / H)`` with
Pillow's bilinear filter (which also low-pass filters when it shrinks), so
the aspect ratio is kept, then centre it on a canvas of the model's size
filled with ``PAD_VALUE``. Boxes map back to the original image with the
inverse transform. An image that already has the model's size passes
through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InvalidInputError

# Mid-grey padding: the middle of the uint8 range.
PAD_VALUE = 128
# Background that transparent pixels are composited onto.
TRANSPARENT_BACKGROUND = (255, 255, 255)


def load_image(path: Path | str) -> np.ndarray:
    """Read an image file as an H x W x 3 uint8 RGB array.

    Greyscale, palette, CMYK and 16-bit images are converted to 8-bit RGB, and
    images with transparency are composited onto white. Pixel rows are taken
    as stored: EXIF orientation is ignored. Raises InvalidInputError with the
    file name when Pillow cannot read the file.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except FileNotFoundError as error:
        raise InvalidInputError(f"image {path} not found") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # Pillow reports a corrupt file as OSError (UnidentifiedImageError,
        # truncated data) or, from some decoders, SyntaxError or ValueError.
        raise InvalidInputError(f"failed to read image {path}: {error}") from error


def to_rgb(image: Image.Image) -> np.ndarray:
    """Convert a Pillow image of any mode to an H x W x 3 uint8 RGB array."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale: map 0..65535 to 0..255 with rounding.
        grey = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "F":
        raise InvalidInputError("floating-point images are not supported; save the image with 8 or 16 bits per channel")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, TRANSPARENT_BACKGROUND + (255,))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


@dataclass(frozen=True)
class Letterbox:
    """Transform from model-input coordinates back to the original image's pixels."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int

    @property
    def is_identity(self) -> bool:
        return self.scale_x == 1.0 and self.scale_y == 1.0 and self.pad_x == 0 and self.pad_y == 0

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """Map N x 4 (x, y, w, h) boxes from model input pixels to original image pixels.

        Boxes are not clipped to the image, like the decoder's own boxes.
        """
        if self.is_identity:
            return boxes
        mapped = np.array(boxes, dtype=np.float64, copy=True)
        mapped[:, 0] = (mapped[:, 0] - self.pad_x) * self.scale_x
        mapped[:, 1] = (mapped[:, 1] - self.pad_y) * self.scale_y
        mapped[:, 2] *= self.scale_x
        mapped[:, 3] *= self.scale_y
        return mapped


IDENTITY = Letterbox(1.0, 1.0, 0, 0)


def letterbox(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, Letterbox]:
    """Resize an H x W x 3 uint8 image onto a width x height canvas, keeping its aspect ratio."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(f"expected an H x W x 3 uint8 RGB image, got shape {image.shape} of {image.dtype}")
    source_height, source_width = image.shape[:2]
    if source_width == 0 or source_height == 0:
        raise InvalidInputError(f"image of size {source_width}x{source_height} is empty")
    if (source_width, source_height) == (width, height):
        return image, IDENTITY

    scale = min(width / source_width, height / source_height)
    resized_width = min(width, max(1, round(source_width * scale)))
    resized_height = min(height, max(1, round(source_height * scale)))
    resized = Image.fromarray(image).resize((resized_width, resized_height), Image.BILINEAR)

    canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
    pad_x = (width - resized_width) // 2
    pad_y = (height - resized_height) // 2
    canvas[pad_y : pad_y + resized_height, pad_x : pad_x + resized_width] = np.asarray(resized)
    transform = Letterbox(
        scale_x=source_width / resized_width,
        scale_y=source_height / resized_height,
        pad_x=pad_x,
        pad_y=pad_y,
    )
    return canvas, transform

"""Input quantization and the word format of the accelerator's data streams.

Every device moves one image as a whole number of 64-bit little-endian words.
Each value sits in a container of 8, 16, 32 or 64 bits that contains its
fixed-point code (the raw bit pattern) in the low bits, with the upper bits
zero. Containers fill a word from bit 0 upwards, and the last word of an
image is zero-padded. The hardware side of this format is ``codesign_io.h`` in the
project's ``bitstream/`` folder, generated from the same metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidInputError

WORD_BITS = 64
# Pixels reach the detector as value / 256, as codesign.project.pixels_to_model_input maps them.
PIXEL_SCALE = np.float32(1.0 / 256.0)


@dataclass(frozen=True)
class StreamFormat:
    """Layout of one image's values in the stream words."""

    values: int
    value_bits: int
    signed: bool

    def __post_init__(self) -> None:
        if not 1 <= self.value_bits <= WORD_BITS:
            raise InvalidInputError(f"values of {self.value_bits} bits do not fit a {WORD_BITS}-bit word")

    @property
    def container_bits(self) -> int:
        bits = 8
        while bits < self.value_bits:
            bits *= 2
        return bits

    @property
    def values_per_word(self) -> int:
        return WORD_BITS // self.container_bits

    @property
    def words(self) -> int:
        return -(-self.values // self.values_per_word)

    @property
    def code_min(self) -> int:
        return -(1 << (self.value_bits - 1)) if self.signed else 0

    @property
    def code_max(self) -> int:
        return (1 << (self.value_bits - 1)) - 1 if self.signed else (1 << self.value_bits) - 1

    def to_dict(self) -> dict:
        return {
            "values": self.values,
            "value_bits": self.value_bits,
            "signed": self.signed,
            "container_bits": self.container_bits,
            "values_per_word": self.values_per_word,
            "words": self.words,
        }


def stream_format(tensor: dict) -> StreamFormat:
    """Return the stream format of an ``input`` or ``output`` entry of codesign.json."""
    return StreamFormat(
        values=int(np.prod(tensor["shape"][1:])),
        value_bits=int(tensor["width"]),
        signed=bool(tensor["signed"]),
    )


def pack(codes: np.ndarray, fmt: StreamFormat) -> np.ndarray:
    """Pack N x values integer codes into N x words uint64 stream words."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != fmt.values:
        raise InvalidInputError(f"expected codes of shape (images, {fmt.values}), got {codes.shape}")
    if codes.size and (codes.min() < fmt.code_min or codes.max() > fmt.code_max):
        raise InvalidInputError(
            f"codes span {codes.min()}..{codes.max()}, outside the {fmt.value_bits}-bit range "
            f"{fmt.code_min}..{fmt.code_max}"
        )
    mask = np.uint64((1 << fmt.value_bits) - 1)
    raw = codes.astype(np.int64).view(np.uint64) & mask
    containers = np.zeros((codes.shape[0], fmt.words * fmt.values_per_word), dtype=f"<u{fmt.container_bits // 8}")
    containers[:, : fmt.values] = raw
    return containers.view("<u8").astype(np.uint64)


def unpack(words: np.ndarray, fmt: StreamFormat) -> np.ndarray:
    """Unpack N x words uint64 stream words into N x values int64 codes."""
    words = np.ascontiguousarray(words, dtype="<u8")
    if words.ndim != 2 or words.shape[1] != fmt.words:
        raise InvalidInputError(f"expected words of shape (images, {fmt.words}), got {words.shape}")
    containers = words.view(f"<u{fmt.container_bits // 8}")[:, : fmt.values]
    raw = containers.astype(np.uint64) & np.uint64((1 << fmt.value_bits) - 1)
    codes = raw.astype(np.int64)
    if fmt.signed and fmt.value_bits < 64:
        sign = np.int64(1) << np.int64(fmt.value_bits - 1)
        codes = np.where(codes >= sign, codes - 2 * sign, codes)
    return codes


def quantize_pixels(pixels: np.ndarray, quantizer: dict) -> np.ndarray:
    """Map uint8 N x H x W x C pixels to the input codes, as the model's input Quant node rounds them.

    ``quantizer`` is the ``input.quantizer`` entry of codesign.json. The float32
    arithmetic follows QONNX's Quant op with rounding mode ROUND (half to even):
    clip(round(x / scale + zero_point), code range) - zero_point.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise InvalidInputError(f"pixels must be uint8, got {pixels.dtype}")
    bit_width = float(quantizer["bit_width"])
    signed = bool(quantizer["signed"])
    narrow = bool(quantizer["narrow"])
    if bit_width != int(bit_width) or (bit_width == 1 and signed):
        raise InvalidInputError(f"input quantizer of {bit_width} bits (signed={signed}) is not supported")
    bits = int(bit_width)
    if signed:
        code_min = -(1 << (bits - 1)) + (1 if narrow else 0)
        code_max = (1 << (bits - 1)) - 1
    else:
        code_min = 0
        code_max = (1 << bits) - 1 - (1 if narrow else 0)

    scale = np.asarray(quantizer["scale"], dtype=np.float32)
    zero_point = np.asarray(quantizer["zero_point"], dtype=np.float32)
    if scale.size != 1 or zero_point.size != 1:
        raise InvalidInputError("an input quantizer with per-channel scale or zero point is not supported")
    scale = scale.reshape(())
    zero_point = zero_point.reshape(())
    values = pixels.astype(np.float32) * PIXEL_SCALE
    scaled = values / scale + zero_point
    scaled = np.clip(scaled, np.float32(code_min), np.float32(code_max))
    dequantized = (np.round(scaled) - zero_point) * scale
    return np.rint(dequantized / scale).astype(np.int64)

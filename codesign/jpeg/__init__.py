"""JPEG-compressed input front-end: host-side codec and decoder model.

The FPGA decodes a fixed-format baseline JPEG itself, so the host link
carries compressed bytes instead of raw RGB. ``encode_jpeg`` produces the files, ``split_jpeg`` separates the
fixed decoder tables from the per-image payload, and ``decode_jpeg`` is the
bit-exact numpy model of the hardware decoder.
"""

from codesign.jpeg.decode import decode_jpeg, decode_parsed, read_jpeg
from codesign.jpeg.encode import JpegSettings, encode_jpeg
from codesign.jpeg.markers import ParsedJpeg, parse_jpeg
from codesign.jpeg.stream import (
    CompressionReport,
    DecoderTables,
    compression_report,
    decode_payload,
    extract_payload,
    join_jpeg,
    split_jpeg,
)

__all__ = [
    "CompressionReport",
    "DecoderTables",
    "JpegSettings",
    "ParsedJpeg",
    "compression_report",
    "decode_jpeg",
    "decode_parsed",
    "decode_payload",
    "encode_jpeg",
    "extract_payload",
    "join_jpeg",
    "parse_jpeg",
    "read_jpeg",
    "split_jpeg",
]

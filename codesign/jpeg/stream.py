"""Compact stream format: fixed decoder tables plus per-image scan data.

For a data set of fixed-size images encoded with one ``JpegSettings``, only
the entropy-coded scan data changes from image to image. ``split_jpeg``
separates a JPEG file into ``DecoderTables`` (image size, components,
sampling factors, quantization and Huffman tables, restart interval: what
the FPGA decoder is configured with once) and the payload that travels over
the host link. ``join_jpeg`` rebuilds a standard JPEG file from both, so
Pillow can decode it for comparison.

The payload is the scan's entropy-coded segment exactly as it appears in the
JPEG file: byte-stuffed (every 0xFF data byte followed by 0x00) and with the
RST0..RST7 markers between restart intervals. The hardware therefore parses
the same bytes as a standard decoder, and join is a concatenation. Stuffing
costs about one byte in 256 for random data.

Payloads share tables only when the Huffman tables are fixed, that is when
the images were encoded with ``optimize=False``. With ``optimize=True``
libjpeg derives Huffman tables per image, and ``extract_payload`` rejects
images whose tables differ from the stream format.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from codesign.jpeg.decode import decode_parsed
from codesign.jpeg.markers import (
    APP0,
    APP14,
    DHT,
    DQT,
    DRI,
    EOI,
    SOI,
    SOS,
    ZIGZAG_TO_NATURAL,
    Frame,
    HuffmanTable,
    ParsedJpeg,
    Scan,
    input_error,
    parse_jpeg,
)

JFIF_APP0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"  # version 1.1, 1:1 aspect, no thumbnail
# Adobe APP14 with transform 0, which marks three components as RGB.
ADOBE_RGB_APP14 = b"Adobe\x00\x64\x00\x00\x00\x00\x00"


@dataclass(frozen=True)
class DecoderTables:
    """Parameters the hardware decoder needs before the first payload byte.

    Describes a single-scan image: the frame (size, components, sampling
    factors, quantization tables, colour transform) and the scan header (the
    component order and the DC and AC Huffman tables of each component) and
    the restart interval.
    """

    frame: Frame
    component_indices: tuple[int, ...]
    dc_table_ids: tuple[int, ...]
    ac_table_ids: tuple[int, ...]
    dc_tables: tuple[HuffmanTable, ...]
    ac_tables: tuple[HuffmanTable, ...]
    restart_interval: int

    @property
    def width(self) -> int:
        return self.frame.width

    @property
    def height(self) -> int:
        return self.frame.height

    def scan(self, payload: bytes) -> Scan:
        """Return the scan that these tables and ``payload`` form."""
        return Scan(
            component_indices=self.component_indices,
            dc_table_ids=self.dc_table_ids,
            ac_table_ids=self.ac_table_ids,
            dc_tables=self.dc_tables,
            ac_tables=self.ac_tables,
            restart_interval=self.restart_interval,
            data=bytes(payload),
        )

    def header_bytes(self) -> bytes:
        """Serialize the tables as a JPEG header from SOI through SOS."""
        return _build_header(self)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _dqt_payload(table_id: int, natural: tuple[int, ...]) -> bytes:
    zigzag = [natural[ZIGZAG_TO_NATURAL[k]] for k in range(64)]
    if max(zigzag) > 255:
        return bytes([0x10 | table_id]) + struct.pack(">64H", *zigzag)
    return bytes([table_id]) + bytes(zigzag)


def _build_header(tables: DecoderTables) -> bytes:
    frame = tables.frame
    parts = [bytes([0xFF, SOI])]
    if frame.color_transform == "rgb":
        parts.append(_segment(APP14, ADOBE_RGB_APP14))
    else:
        parts.append(_segment(APP0, JFIF_APP0))

    written_quant_ids = set()
    for component, table in zip(frame.components, frame.quant_tables):
        if component.quant_table_id not in written_quant_ids:
            written_quant_ids.add(component.quant_table_id)
            parts.append(_segment(DQT, _dqt_payload(component.quant_table_id, table)))

    sof = struct.pack(">BHHB", 8, frame.height, frame.width, len(frame.components))
    for component in frame.components:
        sof += bytes(
            [
                component.component_id,
                (component.h_sampling << 4) | component.v_sampling,
                component.quant_table_id,
            ]
        )
    parts.append(_segment(frame.sof_marker, sof))

    written_huffman = set()
    for table_class, ids, huffman_tables in (
        (0, tables.dc_table_ids, tables.dc_tables),
        (1, tables.ac_table_ids, tables.ac_tables),
    ):
        for table_id, table in zip(ids, huffman_tables):
            if (table_class, table_id) not in written_huffman:
                written_huffman.add((table_class, table_id))
                header = bytes([(table_class << 4) | table_id])
                parts.append(_segment(DHT, header + bytes(table.counts) + table.symbols))

    if tables.restart_interval:
        parts.append(_segment(DRI, struct.pack(">H", tables.restart_interval)))

    sos = bytes([len(tables.component_indices)])
    for index, dc_id, ac_id in zip(tables.component_indices, tables.dc_table_ids, tables.ac_table_ids):
        sos += bytes([frame.components[index].component_id, (dc_id << 4) | ac_id])
    sos += bytes([0, 63, 0])  # spectral selection 0..63, no successive approximation
    parts.append(_segment(SOS, sos))
    return b"".join(parts)


def split_jpeg(data: bytes, name: str | None = None) -> tuple[DecoderTables, bytes]:
    """Split a single-scan sequential JPEG file into decoder tables and payload.

    Raises ``InputError`` for files the decoder rejects and for files with
    more than one scan, which have no compact form.
    """
    parsed = parse_jpeg(data, name)
    if len(parsed.scans) != 1:
        raise input_error(
            name,
            f"JPEG with {len(parsed.scans)} scans has no compact stream form; "
            "re-encode it as a single-scan baseline JPEG",
        )
    scan = parsed.scans[0]
    tables = DecoderTables(
        frame=parsed.frame,
        component_indices=scan.component_indices,
        dc_table_ids=scan.dc_table_ids,
        ac_table_ids=scan.ac_table_ids,
        dc_tables=scan.dc_tables,
        ac_tables=scan.ac_tables,
        restart_interval=scan.restart_interval,
    )
    return tables, scan.data


def join_jpeg(tables: DecoderTables, payload: bytes) -> bytes:
    """Rebuild a standard JPEG file from decoder tables and a payload."""
    return tables.header_bytes() + bytes(payload) + bytes([0xFF, EOI])


def _describe_difference(expected: DecoderTables, actual: DecoderTables) -> str:
    if (expected.width, expected.height) != (actual.width, actual.height):
        return f"image size {actual.width}x{actual.height} differs from the stream format's {expected.width}x{expected.height}"
    if expected.frame.components != actual.frame.components or expected.component_indices != actual.component_indices:
        return "components or sampling factors differ from the stream format"
    if expected.frame.quant_tables != actual.frame.quant_tables:
        return "quantization tables differ from the stream format"
    if (expected.dc_tables, expected.ac_tables) != (actual.dc_tables, actual.ac_tables) or (
        expected.dc_table_ids,
        expected.ac_table_ids,
    ) != (actual.dc_table_ids, actual.ac_table_ids):
        return "Huffman tables differ from the stream format (encode with optimize=False for fixed tables)"
    if expected.restart_interval != actual.restart_interval:
        return f"restart interval {actual.restart_interval} differs from the stream format's {expected.restart_interval}"
    if expected.frame.color_transform != actual.frame.color_transform:
        return f"colour transform {actual.frame.color_transform} differs from the stream format's {expected.frame.color_transform}"
    return "frame header differs from the stream format"


def extract_payload(data: bytes, tables: DecoderTables, name: str | None = None) -> bytes:
    """Return the payload of a JPEG file that must match a fixed stream format.

    Raises ``InputError`` naming the first difference when the file's
    tables or frame parameters differ from ``tables``.
    """
    actual, payload = split_jpeg(data, name)
    if actual != tables:
        raise input_error(name, _describe_difference(tables, actual))
    return payload


def decode_payload(tables: DecoderTables, payload: bytes, name: str | None = None) -> np.ndarray:
    """Decode one payload with the bit-exact decoder model.

    Returns the same pixels as ``decode_jpeg(join_jpeg(tables, payload))``.
    """
    return decode_parsed(ParsedJpeg(tables.frame, (tables.scan(payload),)), name)


@dataclass(frozen=True)
class CompressionReport:
    """Payload sizes of a set of images against raw 8-bit RGB (H*W*3 bytes)."""

    images: int
    raw_rgb_bytes: int  # per image
    mean_payload_bytes: float
    max_payload_bytes: int
    header_bytes: int  # tables, configured once per stream format

    @property
    def compression_ratio(self) -> float:
        """Raw RGB bytes divided by mean payload bytes."""
        return self.raw_rgb_bytes / self.mean_payload_bytes

    @property
    def bits_per_pixel(self) -> float:
        """Mean payload bits per image pixel."""
        return 8 * self.mean_payload_bytes * 3 / self.raw_rgb_bytes

    def summary(self) -> str:
        """Return the report as one line of text."""
        return (
            f"{self.images} images: {self.mean_payload_bytes:.0f} payload bytes per image "
            f"(max {self.max_payload_bytes}) vs {self.raw_rgb_bytes} raw RGB bytes, "
            f"ratio {self.compression_ratio:.1f}, {self.bits_per_pixel:.2f} bits per pixel, "
            f"{self.header_bytes} header bytes once"
        )


def compression_report(tables: DecoderTables, payloads: Iterable[bytes]) -> CompressionReport:
    """Summarize payload sizes for images that share ``tables``.

    Raises ``ValueError`` when ``payloads`` is empty.
    """
    sizes = [len(payload) for payload in payloads]
    if not sizes:
        raise ValueError("compression_report needs at least one payload")
    return CompressionReport(
        images=len(sizes),
        raw_rgb_bytes=tables.width * tables.height * 3,
        mean_payload_bytes=sum(sizes) / len(sizes),
        max_payload_bytes=max(sizes),
        header_bytes=len(tables.header_bytes()),
    )

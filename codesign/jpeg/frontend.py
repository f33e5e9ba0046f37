"""JPEG front-end of a detector: stream format, host-side frames and the decoder model.

A project converted with the front-end takes compressed images in place of
raw pixels. Every image has the detector's input size and is encoded with
one ``JpegSettings`` (quality or explicit quantization tables, chroma
subsampling, standard Huffman tables). The hardware decoder is compiled for
the ``DecoderTables`` of that format, so no JPEG header travels: the host
link carries frames, each a 16-bit big-endian payload length followed by
the image's entropy-coded scan data (``split_jpeg``'s payload).

``build_frontend`` derives the tables from the settings. ``prepare_frame`` is
the host-side preparation: it checks a JPEG file against the project's format
and returns its frame. ``decode_frame`` is the bit-exact software model of
the hardware path from a frame to the detector's input pixels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from codesign.errors import InputError
from codesign.jpeg.encode import SUBSAMPLINGS, JpegSettings, encode_jpeg
from codesign.jpeg.hls import check_supported, describe_format
from codesign.jpeg.markers import Frame, FrameComponent, HuffmanTable
from codesign.jpeg.stream import DecoderTables, decode_payload, extract_payload, split_jpeg

# Length field in front of each payload, as jpeg::decode_frame reads it.
FRAME_HEADER_BYTES = 2
MAX_PAYLOAD_BYTES = 0xFFFF
# First bytes of every item of a front-end testbench input file. They keep
# the testbench from decoding a file of pixel codes as frames.
TESTBENCH_ITEM_MARKER = b"JPGF"

# Default stream format of ``codesign convert --jpeg-frontend``. For the
# bundled detector, benchmarks/jpeg_codesign.py measured quality 90 with
# 4:4:4 among the formats that lose the least mAP@0.5: 0.85 points at 6.3x
# fewer bytes than raw RGB on the 1000 val images. No format stayed within
# 0.3 points.
DEFAULT_QUALITY = 90
DEFAULT_SUBSAMPLING = "4:4:4"

_QTABLES_COMMENT = re.compile(r"#[^\n]*")


@dataclass(frozen=True)
class FrontEnd:
    """The JPEG stream format of a project: encoder settings and the decoder tables they produce."""

    settings: JpegSettings
    tables: DecoderTables

    @property
    def height(self) -> int:
        return self.tables.height

    @property
    def width(self) -> int:
        return self.tables.width

    @property
    def raw_rgb_bytes(self) -> int:
        """Bytes of one uncompressed 8-bit RGB image of the input size."""
        return self.height * self.width * 3

    def describe(self) -> str:
        """Return a one-line summary such as 'quality 80, 96x96 YCbCr 4:4:4, no restart markers'."""
        return f"{describe_settings(self.settings)}, {describe_format(self.tables)}"


def describe_settings(settings: JpegSettings) -> str:
    """Return 'quality Q' or 'custom quantization tables'."""
    if settings.qtables is None:
        return f"quality {settings.quality}"
    return "custom quantization tables"


def parse_qtables(text: str, name: str = "quantization table file") -> tuple[tuple[int, ...], ...]:
    """Parse quantization tables in the format of cjpeg's -qtables option.

    The text contains 64 integers per table in natural (row-major) order,
    separated by white space or commas, with ``#`` starting a comment. The
    first table quantizes luminance, the second chrominance. Raises
    ``InputError`` unless the text contains one or two whole tables.
    """
    words = _QTABLES_COMMENT.sub(" ", text).replace(",", " ").split()
    try:
        values = [int(word) for word in words]
    except ValueError as error:
        raise InputError(f"{name}: invalid quantization table value ({error})") from error
    if not values or len(values) % 64 or len(values) > 128:
        raise InputError(
            f"{name}: contains {len(values)} values; expected 64 (one table) or 128 (luminance, then chrominance)"
        )
    return tuple(tuple(values[start : start + 64]) for start in range(0, len(values), 64))


def read_qtables(path: str | PathLike[str]) -> tuple[tuple[int, ...], ...]:
    """Read a quantization table file (see ``parse_qtables``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"quantization table file not found: {path}")
    return parse_qtables(path.read_text(), str(path))


def format_qtables(tables: Sequence[Sequence[int]], title: str) -> str:
    """Write quantization tables in the format that ``parse_qtables`` and cjpeg read."""
    names = ("luminance", "chrominance")
    lines = [f"# {title}", "# 64 values per table in natural (row-major) order, as cjpeg -qtables reads them."]
    for index, table in enumerate(tables):
        lines.append(f"# table {index}: {names[index] if len(tables) > 1 else 'all components'}")
        for row in range(8):
            lines.append(" ".join(f"{value:3d}" for value in table[row * 8 : row * 8 + 8]))
    return "\n".join(lines) + "\n"


def frontend_settings(
    quality: int | None = None, qtables_file: str | PathLike[str] | None = None, subsampling: str | None = None
) -> JpegSettings:
    """Return the encoder settings of the ``--jpeg-*`` options.

    ``quality`` and ``qtables_file`` exclude each other. Without either, the
    quality is ``DEFAULT_QUALITY``.
    """
    if quality is not None and qtables_file is not None:
        raise InputError("--jpeg-quality and --jpeg-qtables exclude each other; pass one of them")
    subsampling = subsampling or DEFAULT_SUBSAMPLING
    if subsampling not in SUBSAMPLINGS:
        raise InputError(f"invalid --jpeg-subsampling {subsampling!r}; expected one of {', '.join(SUBSAMPLINGS)}")
    if qtables_file is not None:
        return JpegSettings(quality=None, subsampling=subsampling, qtables=read_qtables(qtables_file))
    return JpegSettings(quality=DEFAULT_QUALITY if quality is None else quality, subsampling=subsampling)


def build_frontend(settings: JpegSettings, height: int, width: int) -> FrontEnd:
    """Derive the decoder tables of ``settings`` for images of height x width.

    The tables come from ``split_jpeg`` of an image encoded with the
    settings, so they are exactly what the host encoder writes. Raises
    ``InputError`` for settings whose Huffman tables change per image and for
    formats the HLS decoder lacks.
    """
    if settings.optimize:
        raise InputError("the JPEG front-end needs fixed Huffman tables; encode with optimize=False")
    probe = np.zeros((height, width, 3), dtype=np.uint8)
    tables, _ = split_jpeg(encode_jpeg(probe, settings), "front-end probe image")
    check_supported(tables, "JPEG front-end")
    return FrontEnd(settings=settings, tables=tables)


def frame_payload(payload: bytes, name: str | None = None) -> bytes:
    """Return the frame of one payload: its length as 2 big-endian bytes, then the payload."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        prefix = f"{name}: " if name else ""
        raise InputError(
            f"{prefix}payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES} bytes that the "
            f"{FRAME_HEADER_BYTES}-byte frame length field can carry; encode with a lower quality"
        )
    return len(payload).to_bytes(FRAME_HEADER_BYTES, "big") + bytes(payload)


def split_frame(frame: bytes, name: str | None = None) -> bytes:
    """Return the payload of one frame; raise ``InputError`` when the length field disagrees."""
    prefix = f"{name}: " if name else ""
    if len(frame) < FRAME_HEADER_BYTES:
        raise InputError(f"{prefix}frame of {len(frame)} bytes has no {FRAME_HEADER_BYTES}-byte length field")
    length = int.from_bytes(frame[:FRAME_HEADER_BYTES], "big")
    if FRAME_HEADER_BYTES + length != len(frame):
        raise InputError(
            f"{prefix}invalid frame: the length field declares a {length}-byte payload, "
            f"but {len(frame) - FRAME_HEADER_BYTES} bytes follow it"
        )
    return bytes(frame[FRAME_HEADER_BYTES:])


def prepare_frame(front_end: FrontEnd, jpeg: bytes, name: str | None = None) -> bytes:
    """Check one JPEG file against the project's stream format and return its frame.

    Raises ``InputError`` in one line naming the first difference (image
    size, sampling, quantization or Huffman tables) when the file was not
    encoded with the project's settings.
    """
    try:
        payload = extract_payload(jpeg, front_end.tables, name)
    except InputError as error:
        raise InputError(
            f"{error}; encode the image with the project's JPEG front-end settings "
            f"({front_end.describe()}, recorded in codesign.json)"
        ) from error
    return frame_payload(payload, name)


def decode_frame(front_end: FrontEnd, frame: bytes, name: str | None = None) -> np.ndarray:
    """Decode one frame to the detector's H x W x 3 uint8 input pixels, as the hardware does.

    The bit-exact decoder model gives the pixels. A greyscale stream feeds
    its grey level to all three channels, as the generated top level does.
    """
    pixels = decode_payload(front_end.tables, split_frame(frame, name), name)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return pixels


def encode_frames(front_end: FrontEnd, pixels: Iterable[np.ndarray]) -> tuple[list[bytes], np.ndarray]:
    """Encode images with the front-end's settings; return their frames and decoded pixels.

    Each image goes through the host-side path (``encode_jpeg``, then
    ``prepare_frame``) and the decoder model, so the pixels are what the
    detector receives in hardware.
    """
    frames = []
    decoded = []
    for index, image in enumerate(pixels):
        name = f"image {index}"
        frame = prepare_frame(front_end, encode_jpeg(image, front_end.settings), name)
        frames.append(frame)
        decoded.append(decode_frame(front_end, frame, name))
    if not frames:
        raise InputError("no images to encode")
    return frames, np.stack(decoded)


def frames_to_codes(frames: Sequence[bytes]) -> np.ndarray:
    """Return the frames as testbench input items, one uint8 row each.

    A row is ``TESTBENCH_ITEM_MARKER``, the frame and zero padding up to the
    longest row. The frame's length field marks where the frame ends.
    """
    marker = np.frombuffer(TESTBENCH_ITEM_MARKER, dtype=np.uint8)
    longest = max(len(frame) for frame in frames)
    codes = np.zeros((len(frames), len(marker) + longest), dtype=np.uint8)
    for row, frame in zip(codes, frames):
        row[: len(marker)] = marker
        row[len(marker) : len(marker) + len(frame)] = np.frombuffer(frame, dtype=np.uint8)
    return codes


def codes_to_frames(codes: np.ndarray) -> list[bytes]:
    """Return the frames of testbench input items that ``frames_to_codes`` wrote."""
    frames = []
    offset = len(TESTBENCH_ITEM_MARKER)
    for index, row in enumerate(np.asarray(codes)):
        data = row.astype(np.uint8).tobytes()
        if data[:offset] != TESTBENCH_ITEM_MARKER or len(data) < offset + FRAME_HEADER_BYTES:
            raise InputError(
                f"invalid testbench item {index}: the {TESTBENCH_ITEM_MARKER!r} marker is missing, so it is no "
                "JPEG frame item; re-run codesign convert --jpeg-frontend"
            )
        length = int.from_bytes(data[offset : offset + FRAME_HEADER_BYTES], "big")
        frames.append(data[offset : offset + FRAME_HEADER_BYTES + length])
    return frames


def tables_to_dict(tables: DecoderTables) -> dict:
    """Return a JSON-able description of decoder tables; ``tables_from_dict`` inverts it."""
    frame = tables.frame
    return {
        "sof_marker": frame.sof_marker,
        "width": frame.width,
        "height": frame.height,
        "color_transform": frame.color_transform,
        "components": [
            {"id": c.component_id, "h_sampling": c.h_sampling, "v_sampling": c.v_sampling,
             "quant_table_id": c.quant_table_id}
            for c in frame.components
        ],
        "quant_tables_natural_order": [list(table) for table in frame.quant_tables],
        "component_indices": list(tables.component_indices),
        "dc_table_ids": list(tables.dc_table_ids),
        "ac_table_ids": list(tables.ac_table_ids),
        "dc_tables": [{"counts": list(t.counts), "symbols": list(t.symbols)} for t in tables.dc_tables],
        "ac_tables": [{"counts": list(t.counts), "symbols": list(t.symbols)} for t in tables.ac_tables],
        "restart_interval": tables.restart_interval,
    }


def tables_from_dict(data: dict) -> DecoderTables:
    """Rebuild decoder tables from ``tables_to_dict``'s output."""
    frame = Frame(
        sof_marker=data["sof_marker"],
        width=data["width"],
        height=data["height"],
        components=tuple(
            FrameComponent(c["id"], c["h_sampling"], c["v_sampling"], c["quant_table_id"]) for c in data["components"]
        ),
        quant_tables=tuple(tuple(table) for table in data["quant_tables_natural_order"]),
        color_transform=data["color_transform"],
    )

    def huffman(entries):
        return tuple(HuffmanTable(tuple(t["counts"]), bytes(t["symbols"])) for t in entries)

    return DecoderTables(
        frame=frame,
        component_indices=tuple(data["component_indices"]),
        dc_table_ids=tuple(data["dc_table_ids"]),
        ac_table_ids=tuple(data["ac_table_ids"]),
        dc_tables=huffman(data["dc_tables"]),
        ac_tables=huffman(data["ac_tables"]),
        restart_interval=data["restart_interval"],
    )


def settings_to_dict(settings: JpegSettings) -> dict:
    return {
        "quality": settings.quality,
        "qtables": [list(table) for table in settings.qtables] if settings.qtables is not None else None,
        "subsampling": settings.subsampling,
        "optimize": settings.optimize,
        "restart_interval": settings.restart_interval,
    }


def settings_from_dict(data: dict) -> JpegSettings:
    qtables = data.get("qtables")
    return JpegSettings(
        quality=data.get("quality"),
        subsampling=data["subsampling"],
        qtables=tuple(tuple(table) for table in qtables) if qtables is not None else None,
        optimize=data.get("optimize", False),
        restart_interval=data.get("restart_interval", 0),
    )

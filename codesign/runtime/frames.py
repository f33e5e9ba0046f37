"""Host side of the JPEG front-end: encode images into frames and lay them out in stream words.

A project converted with ``--jpeg-frontend`` reads compressed frames instead
of pixel codes. Each frame is a 16-bit big-endian payload length followed by
the payload, the entropy-coded scan data of one JPEG file. All files share
the project's fixed stream format (tables, image size and subsampling in
codesign.json and ``jpeg_header.bin``), so no JPEG header travels.

Frames travel as 8-bit values of the stream word format (stream.py): frame
byte k sits in bits 8 (k mod 8) .. 8 (k mod 8) + 7 of word k / 8, and the last
word is zero-padded. A frame of L payload bytes takes ceil((2 + L) / 8) words.
Where a device needs fixed-size buffers (the XRT kernel), each frame gets a
slot of ``FRAME_SLOT_WORDS`` words.

The encoder is Pillow's libjpeg with the recorded settings. ``FrameEncoder``
checks once that it writes the tables that the hardware decoder was
compiled with, because another libjpeg build could choose other ones.
"""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InvalidInputError
from .stream import StreamFormat

FRAME_HEADER_BYTES = 2
MAX_PAYLOAD_BYTES = 0xFFFF
FRAME_SLOT_WORDS = -(-(FRAME_HEADER_BYTES + MAX_PAYLOAD_BYTES) // 8)
# Frame bytes as stream values: one slot of 8-bit values per image.
FRAME_FORMAT = StreamFormat(values=FRAME_SLOT_WORDS * 8, value_bits=8, signed=False)
# Pillow's values of its ``subsampling`` save option.
_SUBSAMPLING_CODES = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
# Markers whose segments define the stream format: DQT, SOF0, SOF1, DHT, DRI, SOS.
_TABLE_MARKERS = (0xDB, 0xC0, 0xC1, 0xC4, 0xDD, 0xDA)
_SOS = 0xDA
_EOI = 0xD9


def is_frontend(meta: dict) -> bool:
    """Return whether a project's codesign.json describes a JPEG front-end."""
    return "jpeg_frontend" in meta


def frame_words(frame: bytes) -> int:
    """Return the stream words that one frame takes."""
    return -(-len(frame) // 8)


def pack_frames(frames: list[bytes]) -> np.ndarray:
    """Return N x ``FRAME_SLOT_WORDS`` uint64 words, one zero-padded slot per frame."""
    slots = np.zeros((len(frames), FRAME_SLOT_WORDS * 8), dtype=np.uint8)
    for slot, frame in zip(slots, frames):
        if len(frame) > FRAME_SLOT_WORDS * 8:
            raise InvalidInputError(f"a frame of {len(frame)} bytes exceeds the {FRAME_SLOT_WORDS * 8}-byte slot")
        slot[: len(frame)] = np.frombuffer(frame, dtype=np.uint8)
    return slots.view("<u8").astype(np.uint64)


def table_segments(data: bytes, name: str) -> tuple[list[tuple[int, bytes]], int]:
    """Return the format-defining segments (marker, payload) of a baseline JPEG file and where its scan data starts."""
    if data[:2] != b"\xff\xd8":
        raise InvalidInputError(f"{name}: not a JPEG file (no SOI marker)")
    segments = []
    position = 2
    while True:
        if position + 4 > len(data) or data[position] != 0xFF:
            raise InvalidInputError(f"{name}: invalid JPEG marker at byte {position}")
        marker = data[position + 1]
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        payload = data[position + 4 : position + 2 + length]
        if len(payload) != length - 2:
            raise InvalidInputError(f"{name}: JPEG segment at byte {position} is truncated")
        if marker in _TABLE_MARKERS:
            segments.append((marker, payload))
        position += 2 + length
        if marker == _SOS:
            return segments, position


def payload_of(data: bytes, name: str) -> bytes:
    """Return the entropy-coded scan data of a single-scan JPEG file: the bytes between SOS and EOI."""
    _, start = table_segments(data, name)
    if data[-2:] != bytes([0xFF, _EOI]):
        raise InvalidInputError(f"{name}: the JPEG file does not end with EOI")
    return data[start:-2]


def frame_of_payload(payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidInputError(
            f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES} bytes of a frame; use a lower quality"
        )
    return len(payload).to_bytes(FRAME_HEADER_BYTES, "big") + payload


def _canonical_tables(data: bytes, name: str) -> list[tuple[int, bytes]]:
    """Return the format-defining segments split into single tables and sorted, so that the order of tables
    within and across DQT and DHT segments does not matter."""
    segments, _ = table_segments(data, name)
    tables = []
    for marker, payload in segments:
        if marker == 0xDB:
            position = 0
            while position < len(payload):
                size = 1 + (128 if payload[position] >> 4 else 64)
                tables.append((marker, payload[position : position + size]))
                position += size
        elif marker == 0xC4:
            position = 0
            while position < len(payload):
                size = 17 + sum(payload[position + 1 : position + 17])
                tables.append((marker, payload[position : position + size]))
                position += size
        else:
            tables.append((marker, payload))
    return sorted(tables)


class FrameEncoder:
    """Encode images of a front-end project into frames with the project's recorded JPEG settings."""

    def __init__(self, project_dir: Path, meta: dict):
        entry = meta["jpeg_frontend"]
        header_path = Path(project_dir) / entry["header_file"]
        if not header_path.is_file():
            raise InvalidInputError(f"{header_path} is missing: copy the whole project folder")
        header = header_path.read_bytes()
        if hashlib.sha256(header).hexdigest() != entry["header_sha256"]:
            raise InvalidInputError(f"{header_path} differs from the header recorded in codesign.json")
        self.settings = entry["settings"]
        self.height = int(entry["tables"]["height"])
        self.width = int(entry["tables"]["width"])
        self._tables = _canonical_tables(header + bytes([0xFF, _EOI]), str(header_path))
        probe = self._encode(np.zeros((self.height, self.width, 3), dtype=np.uint8))
        if _canonical_tables(probe, "probe image") != self._tables:
            raise InvalidInputError(
                "this host's Pillow writes other JPEG tables for the project's settings than the hardware decoder "
                "was built with; encode frames where the project was converted (codesign jpeg-frames)"
            )

    def _encode(self, pixels: np.ndarray) -> bytes:
        settings = self.settings
        grey = settings["subsampling"] == "gray"
        image = Image.fromarray(pixels)
        image = image.convert("L") if grey else image
        options: dict[str, object] = {"optimize": bool(settings.get("optimize", False)), "progressive": False,
                                      "restart_marker_blocks": int(settings.get("restart_interval", 0))}
        if settings.get("qtables") is not None:
            options["qtables"] = [list(table) for table in settings["qtables"]]
        else:
            options["quality"] = int(settings["quality"])
        if not grey:
            options["subsampling"] = _SUBSAMPLING_CODES[settings["subsampling"]]
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", **options)
        return buffer.getvalue()

    def encode(self, pixels: np.ndarray) -> list[bytes]:
        """Return one frame per uint8 H x W x 3 image of N x H x W x 3 pixels."""
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[1:] != (self.height, self.width, 3):
            raise InvalidInputError(
                f"expected uint8 pixels of shape (images, {self.height}, {self.width}, 3), "
                f"got {pixels.dtype} {pixels.shape}"
            )
        return [frame_of_payload(payload_of(self._encode(image), f"image {index}"))
                for index, image in enumerate(pixels)]

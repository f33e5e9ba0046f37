"""Synthetic sequential JPEG files for decoder verification.

Pillow writes only 4:4:4, 4:2:2, 4:2:0 and greyscale single-scan files.
``write_jpeg`` entropy-codes given quantized coefficients with any sampling
factors, one scan or one scan per component, restart intervals, 16-bit
quantization tables (SOF1) and the RGB colour transform, so tests and
hardware co-simulation can cover every path of the decoder. The Huffman
tables are fixed and cover every symbol: DC categories 0..15 with 5-bit codes
and all 242 AC run/size symbols with 8-bit codes.
"""

from __future__ import annotations

import struct

import numpy as np

from codesign.jpeg.markers import ZIGZAG_TO_NATURAL

DC_SYMBOLS = bytes(range(16))
AC_SYMBOLS = bytes([0x00, 0xF0] + [(run << 4) | size for run in range(16) for size in range(1, 16)])
DC_COUNTS = (0, 0, 0, 0, len(DC_SYMBOLS)) + (0,) * 11
AC_COUNTS = (0,) * 7 + (len(AC_SYMBOLS),) + (0,) * 8


def _canonical_codes(counts: tuple[int, ...], symbols: bytes) -> dict[int, tuple[int, int]]:
    codes = {}
    code = 0
    position = 0
    for length, count in enumerate(counts, start=1):
        for _ in range(count):
            codes[symbols[position]] = (code, length)
            position += 1
            code += 1
        code <<= 1
    return codes


_DC_CODES = _canonical_codes(DC_COUNTS, DC_SYMBOLS)
_AC_CODES = _canonical_codes(AC_COUNTS, AC_SYMBOLS)


class _BitWriter:
    def __init__(self) -> None:
        self.pieces: list[str] = []

    def put(self, code: int, length: int) -> None:
        if length:
            self.pieces.append(format(code, f"0{length}b"))

    def flush(self) -> bytes:
        """Return the byte-stuffed bits so far, padded with 1-bits, and reset."""
        bits = "".join(self.pieces)
        bits += "1" * (-len(bits) % 8)
        self.pieces = []
        raw = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
        return raw.replace(b"\xff", b"\xff\x00")


def _put_value(writer: _BitWriter, codes: dict[int, tuple[int, int]], run: int, value: int) -> None:
    size = abs(value).bit_length()
    if size > 15:
        raise ValueError(f"coefficient {value} needs more than 15 magnitude bits")
    writer.put(*codes[(run << 4) | size])
    writer.put(value if value >= 0 else value + (1 << size) - 1, size)


def _encode_block(writer: _BitWriter, zigzag: list[int], previous_dc: int) -> None:
    _put_value(writer, _DC_CODES, 0, zigzag[0] - previous_dc)
    nonzero = [k for k in range(1, 64) if zigzag[k]]
    run = 0
    for k in range(1, (nonzero[-1] if nonzero else 0) + 1):
        if zigzag[k] == 0:
            run += 1
            continue
        while run > 15:
            writer.put(*_AC_CODES[0xF0])
            run -= 16
        _put_value(writer, _AC_CODES, run, zigzag[k])
        run = 0
    if not nonzero or nonzero[-1] < 63:
        writer.put(*_AC_CODES[0x00])


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def mcu_grid(sampling: list[tuple[int, int]], width: int, height: int) -> list[tuple[int, int]]:
    """Return the (block rows, block columns) of each component's coefficient array."""
    max_h = max(h for h, _ in sampling)
    max_v = max(v for _, v in sampling)
    mcu_columns = -(-width // (8 * max_h))
    mcu_rows = -(-height // (8 * max_v))
    return [(mcu_rows * v, mcu_columns * h) for h, v in sampling]


def _scan_blocks(
    scan: list[int], sampling: list[tuple[int, int]], width: int, height: int
) -> list[list[tuple[int, int, int]]]:
    """Return the MCUs of a scan as lists of (component, block row, block column)."""
    max_h = max(h for h, _ in sampling)
    max_v = max(v for _, v in sampling)
    if len(scan) == 1:
        component = scan[0]
        h, v = sampling[component]
        component_width = -(-width * h // max_h)
        component_height = -(-height * v // max_v)
        return [
            [(component, row, column)]
            for row in range(-(-component_height // 8))
            for column in range(-(-component_width // 8))
        ]
    mcus = []
    for mcu_row in range(-(-height // (8 * max_v))):
        for mcu_column in range(-(-width // (8 * max_h))):
            mcu = []
            for component in scan:
                h, v = sampling[component]
                mcu += [
                    (component, mcu_row * v + dy, mcu_column * h + dx)
                    for dy in range(v)
                    for dx in range(h)
                ]
            mcus.append(mcu)
    return mcus


def write_jpeg(
    coefficients: list[np.ndarray],
    sampling: list[tuple[int, int]],
    width: int,
    height: int,
    quant_tables: list[list[int]],
    *,
    restart_interval: int = 0,
    separate_scans: bool = False,
    sof_marker: int = 0xC0,
    color_transform: str = "ycbcr",
) -> bytes:
    """Entropy-code quantized coefficients into a sequential JPEG file.

    ``coefficients[c]`` has the shape that ``mcu_grid`` gives for component
    ``c`` plus a last axis of 64 coefficients in natural order. Blocks
    outside the image are coded only in interleaved scans. ``sampling[c]``
    is (horizontal, vertical). Component ``c`` uses quantization table
    ``min(c, len(quant_tables) - 1)``, in natural order; tables with values
    above 255 are written with 16-bit precision. ``color_transform`` is
    ``"ycbcr"`` (JFIF APP0) or ``"rgb"`` (Adobe APP14 with transform 0).
    """
    count = len(coefficients)
    parts = [b"\xff\xd8"]
    if color_transform == "rgb":
        parts.append(_segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00"))
    else:
        parts.append(_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))

    for table_id, table in enumerate(quant_tables):
        zigzag = [int(table[ZIGZAG_TO_NATURAL[k]]) for k in range(64)]
        if max(zigzag) > 255:
            parts.append(_segment(0xDB, bytes([0x10 | table_id]) + struct.pack(">64H", *zigzag)))
        else:
            parts.append(_segment(0xDB, bytes([table_id]) + bytes(zigzag)))

    component_ids = [1 + c for c in range(count)]
    frame = struct.pack(">BHHB", 8, height, width, count)
    for c in range(count):
        h, v = sampling[c]
        frame += bytes([component_ids[c], (h << 4) | v, min(c, len(quant_tables) - 1)])
    parts.append(_segment(sof_marker, frame))
    parts.append(_segment(0xC4, b"\x00" + bytes(DC_COUNTS) + DC_SYMBOLS))
    parts.append(_segment(0xC4, b"\x10" + bytes(AC_COUNTS) + AC_SYMBOLS))
    if restart_interval:
        parts.append(_segment(0xDD, struct.pack(">H", restart_interval)))

    zigzag_order = list(ZIGZAG_TO_NATURAL)
    zigzag_blocks = [np.asarray(array)[:, :, zigzag_order].tolist() for array in coefficients]
    scans = [[c] for c in range(count)] if separate_scans or count == 1 else [list(range(count))]
    for scan in scans:
        header = bytes([len(scan)]) + b"".join(bytes([component_ids[c], 0x00]) for c in scan)
        parts.append(_segment(0xDA, header + b"\x00\x3f\x00"))
        writer = _BitWriter()
        previous_dc = {c: 0 for c in scan}
        for index, mcu in enumerate(_scan_blocks(scan, sampling, width, height)):
            if restart_interval and index and index % restart_interval == 0:
                marker_number = (index // restart_interval - 1) % 8
                parts.append(writer.flush() + bytes([0xFF, 0xD0 + marker_number]))
                previous_dc = {c: 0 for c in scan}
            for component, row, column in mcu:
                block = zigzag_blocks[component][row][column]
                _encode_block(writer, block, previous_dc[component])
                previous_dc[component] = block[0]
        parts.append(writer.flush())
    parts.append(b"\xff\xd9")
    return b"".join(parts)


def random_coefficients(
    rng: np.random.Generator,
    sampling: list[tuple[int, int]],
    width: int,
    height: int,
    scale: float = 30.0,
) -> list[np.ndarray]:
    """Return random coefficient arrays, sparse with energy falling with frequency."""
    arrays = []
    decay = 1.0 / (1.0 + np.arange(64))  # natural-order index as a rough frequency
    for rows, columns in mcu_grid(sampling, width, height):
        shape = (rows, columns, 64)
        values = rng.normal(0.0, 1.0, shape) * scale * decay * (rng.random(shape) < 0.5)
        array = np.round(values).astype(np.int64)
        array[:, :, 0] = rng.integers(-60, 60, (rows, columns))
        arrays.append(array)
    return arrays

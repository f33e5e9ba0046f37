"""Huffman decoding of sequential JPEG scans into quantized DCT coefficients.

The decoder splits a scan at its RSTn markers, removes the 0xFF00 byte
stuffing of each restart interval and decodes it with 16-bit lookup tables.
Every read is bounded by the interval length: a code that no table defines, a
run past coefficient 63, a wrong RSTn number or an interval that runs out of
bits raises ``InputError``. libjpeg-turbo instead warns, pads with zero bits
and keeps going, so such corrupt files decode there but not here.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from codesign.jpeg.markers import (
    ZIGZAG_TO_NATURAL,
    Frame,
    HuffmanTable,
    Scan,
    input_error,
)

# Bits that one block can consume at most: 64 codes of 16 bits, each followed
# by up to 15 magnitude bits. Padding every interval by this many bytes lets
# the loop check the bit position once per block instead of once per read.
_MAX_BYTES_PER_BLOCK = (64 * (16 + 15) + 7) // 8
_PADDING = bytes(_MAX_BYTES_PER_BLOCK + 4)

_RESTART_MARKER = re.compile(rb"\xff+([\xd0-\xd7])")
_STUFFED_FF = re.compile(rb"\xff+\x00")

_NATURAL_ORDER_COLUMNS = np.argsort(np.array(ZIGZAG_TO_NATURAL))


def component_blocks(frame: Frame) -> list[tuple[int, int]]:
    """Return the allocated (block rows, block columns) of each component.

    The size is a whole number of MCUs of the interleaved layout, so every
    block that any scan of the component codes fits.
    """
    mcu_columns = -(-frame.width // (8 * frame.max_h_sampling))
    mcu_rows = -(-frame.height // (8 * frame.max_v_sampling))
    return [(mcu_rows * c.v_sampling, mcu_columns * c.h_sampling) for c in frame.components]


def component_size(frame: Frame, index: int) -> tuple[int, int]:
    """Return the (height, width) in samples of a component before upsampling.

    These are ``downsampled_height`` and ``downsampled_width`` of libjpeg:
    the image size scaled by the component's sampling factors, rounded up.
    """
    component = frame.components[index]
    height = -(-frame.height * component.v_sampling // frame.max_v_sampling)
    width = -(-frame.width * component.h_sampling // frame.max_h_sampling)
    return height, width


@lru_cache(maxsize=64)
def build_lookup(table: HuffmanTable) -> list[int]:
    """Return a 65536-entry table indexed by the next 16 bits of the stream.

    An entry is ``(code length << 8) | symbol``, or -1 where no code matches.
    """
    lookup = np.full(1 << 16, -1, dtype=np.int32)
    code = 0
    position = 0
    for length, count in enumerate(table.counts, start=1):
        for _ in range(count):
            start = code << (16 - length)
            lookup[start : start + (1 << (16 - length))] = (length << 8) | table.symbols[position]
            position += 1
            code += 1
        code <<= 1
    return lookup.tolist()


def _scan_block_count(frame: Frame, scan: Scan) -> int:
    """Return the number of blocks that a scan codes."""
    if len(scan.component_indices) == 1:
        height, width = component_size(frame, scan.component_indices[0])
        return -(-height // 8) * -(-width // 8)
    mcu_columns = -(-frame.width // (8 * frame.max_h_sampling))
    mcu_rows = -(-frame.height // (8 * frame.max_v_sampling))
    blocks_per_mcu = sum(
        frame.components[i].h_sampling * frame.components[i].v_sampling for i in scan.component_indices
    )
    return mcu_rows * mcu_columns * blocks_per_mcu


def _scan_block_order(frame: Frame, scan: Scan) -> tuple[list[int], list[int], int]:
    """Return the coefficient offset and scan slot of every block in coding order.

    Offsets index the flat zigzag-ordered coefficient list of the block's
    component. The third value is the number of blocks per MCU.
    """
    allocated = component_blocks(frame)
    if len(scan.component_indices) == 1:
        # A non-interleaved scan codes only the blocks that hold image samples,
        # one block per MCU, in raster order.
        index = scan.component_indices[0]
        height, width = component_size(frame, index)
        rows, columns = -(-height // 8), -(-width // 8)
        stride = allocated[index][1]
        grid = np.arange(rows)[:, None] * stride + np.arange(columns)[None, :]
        return (grid.reshape(-1) * 64).tolist(), [0] * (rows * columns), 1

    mcu_columns = -(-frame.width // (8 * frame.max_h_sampling))
    mcu_rows = -(-frame.height // (8 * frame.max_v_sampling))
    per_mcu_offsets = []
    per_mcu_slots = []
    for slot, index in enumerate(scan.component_indices):
        component = frame.components[index]
        stride = allocated[index][1]
        for v in range(component.v_sampling):
            for h in range(component.h_sampling):
                mcu_row = np.arange(mcu_rows)[:, None]
                mcu_column = np.arange(mcu_columns)[None, :]
                block = (mcu_row * component.v_sampling + v) * stride + (
                    mcu_column * component.h_sampling + h
                )
                per_mcu_offsets.append(block.reshape(-1) * 64)
                per_mcu_slots.append(slot)
    offsets = np.stack(per_mcu_offsets, axis=1).reshape(-1)
    slots = per_mcu_slots * (mcu_rows * mcu_columns)
    return offsets.tolist(), slots, len(per_mcu_slots)


def _split_restart_intervals(scan: Scan, mcu_count: int, name: str | None) -> list[bytes]:
    """Split the scan data at RSTn markers and check their count and numbering."""
    pieces = []
    start = 0
    for number, marker in enumerate(_RESTART_MARKER.finditer(scan.data)):
        expected = 0xD0 + number % 8
        found = marker.group(1)[0]
        if found != expected:
            raise input_error(
                name,
                f"corrupt scan data: found marker 0xFF{found:02X} where RST{number % 8} "
                f"(0xFF{expected:02X}) was expected",
            )
        pieces.append(scan.data[start : marker.start()])
        start = marker.end()
    pieces.append(scan.data[start:])

    if scan.restart_interval:
        expected_count = -(-mcu_count // scan.restart_interval)
    else:
        expected_count = 1
    if len(pieces) != expected_count:
        raise input_error(
            name,
            f"corrupt scan data: {len(pieces) - 1} restart markers where "
            f"{expected_count - 1} were expected",
        )
    return [_STUFFED_FF.sub(b"\xff", piece) for piece in pieces]


def _decode_interval(
    data: bytes,
    offsets: list[int],
    slots: list[int],
    stores: list[list[int]],
    dc_lookups: list[list[int]],
    ac_lookups: list[list[int]],
    name: str | None,
) -> None:
    """Decode the blocks of one restart interval into ``stores``.

    ``stores[slot]`` receives the coefficients of the block at ``offsets[i]``
    in zigzag order. DC prediction starts at 0, as at every restart.
    """
    bit_count = 8 * len(data)
    if 2 * len(offsets) > bit_count:
        # Every block needs at least a DC code and an EOB code of 1 bit each.
        raise input_error(name, "truncated or corrupt scan data: too few bytes for the image size")
    padded = np.frombuffer(data + _PADDING, dtype=np.uint8).astype(np.uint32)
    # words[i] contains the 32 bits starting at byte i, so a read of up to 16 bits
    # at any bit position of byte i is one shift and mask.
    words = (
        (padded[:-3] << 24) | (padded[1:-2] << 16) | (padded[2:-1] << 8) | padded[3:]
    ).tolist()
    predictions = [0] * len(dc_lookups)
    position = 0
    for block in range(len(offsets)):
        slot = slots[block]
        base = offsets[block]
        store = stores[slot]

        entry = dc_lookups[slot][(words[position >> 3] >> (16 - (position & 7))) & 0xFFFF]
        if entry < 0:
            raise input_error(name, "corrupt scan data: invalid Huffman code")
        position += entry >> 8
        size = entry & 0xFF
        if size:
            value = (words[position >> 3] >> (32 - (position & 7) - size)) & ((1 << size) - 1)
            position += size
            if value < (1 << (size - 1)):
                value -= (1 << size) - 1
            predictions[slot] += value
        store[base] = predictions[slot]

        ac_lookup = ac_lookups[slot]
        k = 1
        while k < 64:
            entry = ac_lookup[(words[position >> 3] >> (16 - (position & 7))) & 0xFFFF]
            if entry < 0:
                raise input_error(name, "corrupt scan data: invalid Huffman code")
            position += entry >> 8
            run_size = entry & 0xFF
            size = run_size & 15
            if size:
                k += run_size >> 4
                if k > 63:
                    raise input_error(name, "corrupt scan data: coefficient run past position 63")
                value = (words[position >> 3] >> (32 - (position & 7) - size)) & ((1 << size) - 1)
                position += size
                if value < (1 << (size - 1)):
                    value -= (1 << size) - 1
                store[base + k] = value
                k += 1
            elif run_size == 0xF0:
                k += 16  # ZRL: a run of 16 zero coefficients
            else:
                break  # EOB
        if position > bit_count:
            raise input_error(name, "truncated or corrupt scan data: restart interval ran out of bits")


def decode_coefficients(frame: Frame, scans: tuple[Scan, ...], name: str | None = None) -> list[np.ndarray]:
    """Decode all scans into quantized coefficients.

    Returns one int16 array per component of shape (block rows, block
    columns, 64) in natural (row-major) coefficient order, sized as
    ``component_blocks`` gives. Values wrap to 16 bits as libjpeg's JCOEF does.
    """
    allocated = component_blocks(frame)
    stores: list[list[int] | None] = [None] * len(frame.components)
    for scan in scans:
        # Every block needs at least a DC code and an EOB code of 1 bit each.
        # Checking that before any allocation keeps a forged frame size from
        # exhausting memory.
        if 2 * _scan_block_count(frame, scan) > 8 * len(scan.data):
            raise input_error(name, "truncated or corrupt scan data: too few bytes for the image size")
        offsets, slots, blocks_per_mcu = _scan_block_order(frame, scan)
        mcu_count = len(offsets) // blocks_per_mcu
        intervals = _split_restart_intervals(scan, mcu_count, name)
        scan_stores = []
        for index in scan.component_indices:
            rows, columns = allocated[index]
            stores[index] = [0] * (rows * columns * 64)
            scan_stores.append(stores[index])
        dc_lookups = [build_lookup(table) for table in scan.dc_tables]
        ac_lookups = [build_lookup(table) for table in scan.ac_tables]
        mcus_per_interval = scan.restart_interval or mcu_count
        for number, data in enumerate(intervals):
            first = number * mcus_per_interval * blocks_per_mcu
            last = min(mcu_count, (number + 1) * mcus_per_interval) * blocks_per_mcu
            _decode_interval(
                data,
                offsets[first:last],
                slots[first:last],
                scan_stores,
                dc_lookups,
                ac_lookups,
                name,
            )

    coefficients = []
    for index, store in enumerate(stores):
        rows, columns = allocated[index]
        zigzag = np.array(store, dtype=np.int64).astype(np.int16).reshape(rows, columns, 64)
        coefficients.append(zigzag[:, :, _NATURAL_ORDER_COLUMNS])
    return coefficients

"""Read and write codesign tensor files, the testbench's data format.

Layout (little-endian): the 4 bytes ``CDTB``, then uint32 version (1), uint32
bytes per value (1, 2, 4 or 8), uint32 signedness, uint64 item count, uint64
values per item, then the integer codes item by item. A code is a fixed-point
value divided by its LSB.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from codesign.errors import InputError

MAGIC = b"CDTB"
VERSION = 1
_HEADER = struct.Struct("<4sIIIQQ")


def _dtype_for(codes: np.ndarray) -> np.dtype:
    lo, hi = int(codes.min(initial=0)), int(codes.max(initial=0))
    for bits in (8, 16, 32, 64):
        if lo >= 0 and hi < 2**bits:
            return np.dtype(f"<u{bits // 8}")
        if -(2 ** (bits - 1)) <= lo and hi < 2 ** (bits - 1):
            return np.dtype(f"<i{bits // 8}")
    raise ValueError("codes do not fit in 64 bits")


def write(path: Path, codes: np.ndarray) -> None:
    """Write an N x ... array of integer codes as N items."""
    codes = np.asarray(codes)
    items = codes.shape[0]
    flat = codes.reshape(items, -1)
    dtype = _dtype_for(flat)
    header = _HEADER.pack(MAGIC, VERSION, dtype.itemsize, int(dtype.kind == "i"), items, flat.shape[1])
    with open(path, "wb") as f:
        f.write(header)
        f.write(flat.astype(dtype).tobytes())


def read(path: Path) -> np.ndarray:
    """Return the codes of a tensor file as an int64 array of shape items x values."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    data = path.read_bytes()
    if len(data) < _HEADER.size:
        raise InputError(f"data file {path} is shorter than its header")
    magic, version, width, signed, items, per_item = _HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or width not in (1, 2, 4, 8):
        raise InputError(f"data file {path} is not a codesign tensor file (bad header)")
    dtype = np.dtype(f"<{'i' if signed else 'u'}{width}")
    expected = items * per_item * width
    if len(data) - _HEADER.size < expected:
        raise InputError(f"data file {path} is truncated: shorter than its header requires ({len(data) - _HEADER.size} of {expected} bytes)")
    values = np.frombuffer(data, dtype=dtype, count=items * per_item, offset=_HEADER.size)
    return values.astype(np.int64).reshape(items, per_item)

"""Fuzz the JPEG parser and the bit-exact decoder model with atheris.

Usage:
    python benchmarks/fuzz_jpeg.py --write-seeds DIR
    python benchmarks/fuzz_jpeg.py [libFuzzer options] CORPUS_DIR [CORPUS_DIR ...]

Example: python benchmarks/fuzz_jpeg.py -runs=1000000 -max_len=2048 corpus/

The contract under test: for any input bytes, ``codesign.jpeg`` either
returns or raises ``codesign.errors.InputError``. Any other exception is a
crash, and libFuzzer reports inputs that run longer than -timeout seconds
(10 unless given) as hangs. The decoder's work is bounded by the input
length because it rejects scans with fewer than 2 bits per coded block, so
-max_len bounds the time per input.

The first input byte selects the target, the rest is its data:
    0 mod 5      a whole JPEG file: parse_jpeg and decode_parsed, then for
                 single-scan files split_jpeg, decode_payload, and a check
                 that join_jpeg and split_jpeg round-trip;
    1..4 mod 5   a scan payload for one of four fixed stream formats
                 (``FIXED_FORMATS``): decode_payload only, which reaches the
                 Huffman decoder far more often than whole random files.
``--write-seeds`` writes valid inputs for every target into DIR.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import PIL.Image  # noqa: F401  imported before instrumentation, so only codesign is instrumented

import atheris

with atheris.instrument_imports(include=["codesign"]):
    from codesign.errors import InputError
    from codesign.jpeg import (
        JpegSettings,
        decode_parsed,
        decode_payload,
        encode_jpeg,
        join_jpeg,
        parse_jpeg,
        split_jpeg,
    )
    from codesign.jpeg.vectors import random_coefficients, write_jpeg

TARGETS = 5
DEFAULT_TIMEOUT = "-timeout=10"

# (height, width, settings) of the fixed stream formats that targets 1..4 decode.
FIXED_FORMATS = [
    (24, 32, JpegSettings(quality=75, subsampling="4:2:0", restart_interval=2)),
    (9, 17, JpegSettings(quality=50, subsampling="gray", restart_interval=1)),
    (16, 16, JpegSettings(quality=90, subsampling="4:4:4")),
    (13, 21, JpegSettings(quality=None, subsampling="4:2:2", qtables=((3,) * 64, (255,) * 64))),
]


def make_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    rows, columns = np.mgrid[0:height, 0:width]
    image = np.stack([9 * columns, 7 * rows, 4 * (rows + columns)], axis=-1) + rng.normal(0, 30, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def build_fixed_tables() -> list:
    rng = np.random.default_rng(0)
    return [split_jpeg(encode_jpeg(make_image(rng, h, w), settings))[0] for h, w, settings in FIXED_FORMATS]


FIXED_TABLES = build_fixed_tables()


def check_file(data: bytes) -> None:
    parsed = parse_jpeg(data)
    decode_parsed(parsed)
    if len(parsed.scans) != 1:
        return
    tables, payload = split_jpeg(data)
    decode_payload(tables, payload)
    rebuilt = join_jpeg(tables, payload)
    if split_jpeg(rebuilt) != (tables, payload):
        raise AssertionError("split_jpeg(join_jpeg(tables, payload)) differs from (tables, payload)")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target = data[0] % TARGETS
    body = data[1:]
    try:
        if target == 0:
            check_file(body)
        else:
            decode_payload(FIXED_TABLES[target - 1], body)
    except InputError:
        pass


def write_seeds(folder: Path) -> int:
    """Write valid inputs for every target into ``folder`` and return their count."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    seeds = []
    for subsampling in ("4:2:0", "4:2:2", "4:4:4", "gray"):
        for quality, restart in ((30, 0), (85, 1), (95, 3)):
            settings = JpegSettings(quality=quality, subsampling=subsampling, restart_interval=restart)
            seeds.append(bytes([0]) + encode_jpeg(make_image(rng, 11, 19), settings))
    seeds.append(bytes([0]) + encode_jpeg(make_image(rng, 16, 16), JpegSettings(quality=70, optimize=True)))
    for sampling in ([(2, 2), (1, 1), (1, 1)], [(1, 2), (2, 1), (1, 1)], [(3, 1), (1, 1), (1, 1)]):
        coefficients = random_coefficients(rng, sampling, 13, 10)
        seeds.append(bytes([0]) + write_jpeg(coefficients, sampling, 13, 10, [[4] * 64, [300] * 64], sof_marker=0xC1))
        seeds.append(bytes([0]) + write_jpeg(coefficients, sampling, 13, 10, [[5] * 64], separate_scans=True, restart_interval=2))
    for target, (height, width, settings) in enumerate(FIXED_FORMATS, start=1):
        for _ in range(3):
            _, payload = split_jpeg(encode_jpeg(make_image(rng, height, width), settings))
            seeds.append(bytes([target]) + payload)
    for index, seed in enumerate(seeds):
        (folder / f"seed{index:03d}").write_bytes(seed)
    return len(seeds)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--write-seeds":
        count = write_seeds(Path(sys.argv[2]))
        print(f"wrote {count} seed inputs to {sys.argv[2]}")
        return
    arguments = list(sys.argv)
    if not any(argument.startswith("-timeout=") for argument in arguments):
        arguments.append(DEFAULT_TIMEOUT)
    atheris.Setup(arguments, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

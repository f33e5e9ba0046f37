"""The numpy decoder model against Pillow's libjpeg-turbo, pixel for pixel."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from codesign.errors import InputError
from codesign.jpeg import JpegSettings, decode_jpeg, encode_jpeg, parse_jpeg, read_jpeg
from codesign.jpeg.vectors import random_coefficients, write_jpeg

SAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "jpeg-samples"
BASELINE_SAMPLES = [
    "HappyFish.jpg",
    "baboon.jpg",
    "building.jpg",
    "ellipses.jpg",
    "fruits.jpg",
    "home.jpg",
    "messi5.jpg",
    "starry_night.jpg",
]
PROGRESSIVE_SAMPLE = "Blender_Suzanne1.jpg"

needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason=f"JPEG sample folder {SAMPLES} is absent"
)


def pillow_decode(data: bytes) -> np.ndarray:
    """Decode with Pillow the way the model promises to match: RGB, or L for greyscale."""
    image = Image.open(io.BytesIO(data))
    return np.asarray(image.convert("L" if image.mode == "L" else "RGB"))


def assert_matches_pillow(data: bytes, label: str) -> None:
    expected = pillow_decode(data)
    actual = decode_jpeg(data, label)
    assert actual.dtype == np.uint8
    assert actual.shape == expected.shape, label
    differing = int(np.count_nonzero(actual != expected))
    assert differing == 0, f"{label}: {differing} samples differ from Pillow"


def marker_offset(data: bytes, marker: int) -> int:
    offset = data.find(bytes([0xFF, marker]))
    assert offset >= 0, f"marker 0xFF{marker:02X} not found"
    return offset


# --- Sample photographs -----------------------------------------------------


@needs_samples
@pytest.mark.parametrize("file_name", BASELINE_SAMPLES)
def test_sample_matches_pillow(file_name):
    data = (SAMPLES / file_name).read_bytes()
    assert_matches_pillow(data, file_name)


@needs_samples
def test_sample_read_jpeg_matches_pillow():
    path = SAMPLES / "HappyFish.jpg"
    assert np.array_equal(read_jpeg(path), pillow_decode(path.read_bytes()))


@needs_samples
def test_progressive_sample_rejected():
    with pytest.raises(InputError) as error:
        read_jpeg(SAMPLES / PROGRESSIVE_SAMPLE)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(PROGRESSIVE_SAMPLE + ": ")
    assert "progressive JPEG (SOF2) is not supported" in message
    assert "re-encode as 8-bit baseline JPEG" in message


# --- 200 generated images -----------------------------------------------------


def generated_image(rng: np.random.Generator, index: int) -> np.ndarray:
    """Return an RGB test image: gradient, noise, edges or a mix, of odd size."""
    sizes = [(37, 53), (53, 37), (32, 32), (96, 64), (1, 1), (7, 9), (17, 33)]
    if index < len(sizes):
        height, width = sizes[index]
    else:
        height, width = (int(n) for n in rng.integers(32, 97, 2))
    rows, columns = np.mgrid[0:height, 0:width]
    kind = index % 4
    if kind == 0:  # smooth gradients
        image = np.stack(
            [
                255 * columns / max(width - 1, 1),
                255 * rows / max(height - 1, 1),
                128 + 127 * np.sin((rows + columns) / 9.0),
            ],
            axis=-1,
        )
    elif kind == 1:  # uniform noise
        image = rng.integers(0, 256, (height, width, 3))
    elif kind == 2:  # hard edges: random rectangles on a flat background
        image = np.full((height, width, 3), rng.integers(0, 256, 3))
        for _ in range(6):
            top, left = rng.integers(0, height), rng.integers(0, width)
            image[top : top + int(rng.integers(1, 20)), left : left + int(rng.integers(1, 20))] = rng.integers(0, 256, 3)
    else:  # gradient with noise and a stripe pattern
        image = np.stack([8 * columns, 5 * rows, 255 * ((columns // 3) % 2)], axis=-1)
        image = image + rng.normal(0, 20, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def generated_settings(index: int) -> JpegSettings:
    subsampling = ("4:2:0", "4:4:4", "gray", "4:2:0", "4:4:4", "4:2:2")[index % 6]
    if index % 7 == 3:
        # Custom tables: flat, steep ramp, and one with the baseline maximum 255.
        tables = [
            tuple([3] * 64),
            tuple(1 + (row + column) * 12 for row in range(8) for column in range(8)),
            tuple([255] * 64),
        ]
        luminance = tables[index % 3]
        chrominance = tables[(index + 1) % 3]
        qtables = (luminance,) if subsampling == "gray" else (luminance, chrominance)
        return JpegSettings(quality=None, qtables=qtables, subsampling=subsampling)
    quality = (5, 25, 50, 75, 90, 95, 100)[index % 7]
    return JpegSettings(quality=quality, subsampling=subsampling, optimize=index % 2 == 1)


def test_generated_images_match_pillow():
    rng = np.random.default_rng(20200501)
    mismatches = []
    for index in range(200):
        image = generated_image(rng, index)
        settings = generated_settings(index)
        data = encode_jpeg(image, settings)
        expected = pillow_decode(data)
        actual = decode_jpeg(data)
        if actual.shape != expected.shape or not np.array_equal(actual, expected):
            mismatches.append(f"image {index} {image.shape} {settings}")
    assert mismatches == []


# --- Sampling factors, scans, restarts and tables beyond Pillow's encoder -----

SAMPLING_CASES = {
    "h1v1": [(1, 1), (1, 1), (1, 1)],
    "h2v2": [(2, 2), (1, 1), (1, 1)],
    "h2v1": [(2, 1), (1, 1), (1, 1)],
    "h1v2": [(1, 2), (1, 1), (1, 1)],
    "h4v1": [(4, 1), (1, 1), (1, 1)],
    "h3v1": [(3, 1), (1, 1), (1, 1)],
    "h1v4": [(1, 4), (1, 1), (1, 2)],
    "mixed": [(2, 2), (2, 1), (1, 2)],
    "luma_not_max": [(1, 1), (2, 2), (1, 1)],
    "gray_h2v2": [(2, 2)],
}
# Widths 1..3 exercise the replication fallback of fancy upsampling, which
# libjpeg-turbo uses when a downsampled row has 2 samples or fewer.
SIZES = [(1, 1), (2, 3), (3, 2), (5, 5), (17, 9), (33, 31), (40, 17)]


@pytest.mark.parametrize("case", sorted(SAMPLING_CASES))
def test_sampling_factors_match_pillow(case):
    sampling = SAMPLING_CASES[case]
    rng = np.random.default_rng(len(case))
    for width, height in SIZES:
        for options in ({}, {"restart_interval": 2}, {"separate_scans": True, "restart_interval": 3}):
            coefficients = random_coefficients(rng, sampling, width, height)
            data = write_jpeg(coefficients, sampling, width, height, [[4] * 64, [6] * 64], **options)
            assert_matches_pillow(data, f"{case} {width}x{height} {options}")


def test_extended_sof1_16bit_tables_match_pillow():
    rng = np.random.default_rng(1)
    sampling = [(2, 2), (1, 1), (1, 1)]
    tables = [[300] + [2] * 63, [1] * 63 + [1000]]
    coefficients = random_coefficients(rng, sampling, 24, 20, scale=3)
    for array in coefficients:
        # Keep samples near 0..255: far outside it, Pillow's SIMD IDCT
        # saturates where jidctint.c wraps (see the range-limit test).
        array[:, :, 0] //= 20
        array[:, :, 63] = rng.integers(-1, 2, array.shape[:2])
    data = write_jpeg(coefficients, sampling, 24, 20, tables, sof_marker=0xC1)
    assert parse_jpeg(data).frame.sof_marker == 0xC1
    assert_matches_pillow(data, "SOF1 with 16-bit DQT")


def test_adobe_rgb_transform_matches_pillow():
    image = np.random.default_rng(2).integers(0, 256, (19, 23, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", keep_rgb=True, quality=90)
    data = buffer.getvalue()
    assert parse_jpeg(data).frame.color_transform == "rgb"
    assert_matches_pillow(data, "keep_rgb")


def test_rgb_component_ids_match_pillow():
    rng = np.random.default_rng(3)
    sampling = [(1, 1)] * 3
    data = bytearray(write_jpeg(random_coefficients(rng, sampling, 16, 8), sampling, 16, 8, [[8] * 64]))
    # Drop the JFIF segment and name the components 'R', 'G', 'B', which
    # libjpeg reads as RGB without colour conversion.
    app0 = marker_offset(data, 0xE0)
    del data[app0 : app0 + 18]
    sof = marker_offset(data, 0xC0)
    for i, component_id in enumerate(b"RGB"):
        data[sof + 10 + 3 * i] = component_id
    sos = marker_offset(data, 0xDA)
    for i, component_id in enumerate(b"RGB"):
        data[sos + 5 + 2 * i] = component_id
    assert parse_jpeg(bytes(data)).frame.color_transform == "rgb"
    assert_matches_pillow(bytes(data), "RGB component ids")


def test_standard_tables_equal_libjpeg_output():
    from codesign.jpeg import markers

    data = encode_jpeg(np.zeros((16, 16, 3), np.uint8), JpegSettings(quality=80, optimize=False))
    scan = parse_jpeg(data).scans[0]
    assert (scan.dc_tables[0].counts, scan.dc_tables[0].symbols) == markers.STANDARD_DC_LUMINANCE
    assert (scan.dc_tables[1].counts, scan.dc_tables[1].symbols) == markers.STANDARD_DC_CHROMINANCE
    assert (scan.ac_tables[0].counts, scan.ac_tables[0].symbols) == markers.STANDARD_AC_LUMINANCE
    assert (scan.ac_tables[1].counts, scan.ac_tables[1].symbols) == markers.STANDARD_AC_CHROMINANCE


def test_missing_dht_uses_standard_tables():
    image = np.random.default_rng(4).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    data = bytearray(encode_jpeg(image, JpegSettings(quality=80, optimize=False)))
    while (offset := data.find(b"\xff\xc4")) >= 0:
        length = struct.unpack(">H", data[offset + 2 : offset + 4])[0]
        del data[offset : offset + 2 + length]
    assert_matches_pillow(bytes(data), "no DHT")


def test_zero_spectral_selection_accepted():
    # Some baseline encoders write zeros where Ss=0, Se=63, Ah=Al=0 belong,
    # and libjpeg only warns about it.
    data = bytearray(baseline_file())
    sos = marker_offset(data, 0xDA)
    header_end = sos + 2 + struct.unpack(">H", data[sos + 2 : sos + 4])[0]
    data[header_end - 3 : header_end] = b"\x00\x00\x00"
    assert_matches_pillow(bytes(data), "Se=0")


def test_restart_intervals_match_pillow():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    for interval in (1, 2, 5, 9, 200):
        for subsampling in ("4:2:0", "4:4:4", "gray"):
            settings = JpegSettings(quality=85, subsampling=subsampling, restart_interval=interval)
            data = encode_jpeg(image, settings)
            assert marker_offset(data, 0xDD) > 0
            assert_matches_pillow(data, f"restart interval {interval} {subsampling}")


def test_idct_range_limit_matches_c_path():
    """Out-of-range samples wrap as in jidctint.c (libjpeg-turbo without SIMD)."""
    cases = []
    for dc, quant, ac in ((400, 16, {}), (-400, 16, {}), (1, 40000, {}), (0, 200, {1: 300, 8: -300, 9: 250})):
        block = np.zeros((1, 1, 64), dtype=np.int64)
        block[0, 0, 0] = dc
        for index, value in ac.items():
            block[0, 0, index] = value
        cases.append(write_jpeg([block], [(1, 1)], 8, 8, [[quant] + [quant if ac else 1] * 63]))
    script = (
        "import io, sys, numpy as np\n"
        "from PIL import Image\n"
        "for path in sys.argv[1:]:\n"
        "    data = open(path, 'rb').read()\n"
        "    sys.stdout.write(np.asarray(Image.open(io.BytesIO(data))).tobytes().hex() + '\\n')\n"
    )
    paths = []
    for number, data in enumerate(cases):
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"codesign_idct_range_{os.getpid()}_{number}.jpg"
        path.write_bytes(data)
        paths.append(str(path))
    try:
        environment = dict(os.environ, JSIMD_FORCENONE="1")
        output = subprocess.run(
            [sys.executable, "-c", script, *paths], env=environment, capture_output=True, text=True, check=True
        ).stdout.split()
    finally:
        for path in paths:
            Path(path).unlink()
    for number, data in enumerate(cases):
        assert decode_jpeg(data).tobytes().hex() == output[number], f"case {number}"


# --- Unsupported coding processes ---------------------------------------------


def baseline_file() -> bytes:
    image = np.random.default_rng(6).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return encode_jpeg(image, JpegSettings(quality=75))


@pytest.mark.parametrize(
    ("marker", "feature"),
    [
        (0xC2, "progressive JPEG (SOF2)"),
        (0xC3, "lossless JPEG (SOF3)"),
        (0xC5, "hierarchical JPEG (SOF5)"),
        (0xC9, "arithmetic-coded JPEG (SOF9)"),
        (0xCA, "arithmetic-coded progressive JPEG (SOF10)"),
        (0xCD, "hierarchical arithmetic-coded JPEG (SOF13)"),
    ],
)
def test_unsupported_frame_type_rejected(marker, feature):
    data = bytearray(baseline_file())
    data[marker_offset(data, 0xC0) + 1] = marker
    with pytest.raises(InputError, match=r"^in\.jpg: " + feature.replace("(", r"\(").replace(")", r"\)") + " is not supported"):
        decode_jpeg(bytes(data), "in.jpg")


def test_progressive_pillow_file_rejected():
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(buffer, format="JPEG", progressive=True)
    with pytest.raises(InputError, match="progressive JPEG"):
        decode_jpeg(buffer.getvalue())


def test_twelve_bit_precision_rejected():
    data = bytearray(baseline_file())
    data[marker_offset(data, 0xC0) + 4] = 12
    with pytest.raises(InputError, match="12-bit sample precision is not supported"):
        decode_jpeg(bytes(data))


def test_cmyk_rejected():
    buffer = io.BytesIO()
    Image.new("CMYK", (16, 16)).save(buffer, format="JPEG")
    with pytest.raises(InputError, match=r"4-component \(CMYK or YCCK\) JPEG is not supported"):
        decode_jpeg(buffer.getvalue())


def test_dnl_height_rejected():
    data = bytearray(baseline_file())
    offset = marker_offset(data, 0xC0)
    data[offset + 5 : offset + 7] = b"\x00\x00"
    with pytest.raises(InputError, match="DNL marker"):
        decode_jpeg(bytes(data))


def test_fractional_sampling_rejected():
    rng = np.random.default_rng(7)
    sampling = [(3, 1), (2, 1), (1, 1)]
    data = write_jpeg(random_coefficients(rng, sampling, 24, 8), sampling, 24, 8, [[4] * 64])
    with pytest.raises(InputError, match="non-integer upsampling ratio"):
        decode_jpeg(data)


def test_mcu_over_ten_blocks_rejected():
    rng = np.random.default_rng(8)
    sampling = [(4, 2), (1, 1), (2, 1)]
    data = write_jpeg(random_coefficients(rng, sampling, 9, 9), sampling, 9, 9, [[4] * 64])
    with pytest.raises(InputError, match="11 blocks per MCU"):
        decode_jpeg(data)


# --- Malformed, truncated and corrupt data -------------------------------------


def test_every_truncation_raises_input_error():
    for data in (baseline_file(), encode_jpeg(np.zeros((9, 9), np.uint8), JpegSettings(subsampling="gray", restart_interval=1))):
        for length in range(len(data)):
            with pytest.raises(InputError):
                decode_jpeg(data[:length])


def test_truncated_scan_names_problem():
    data = baseline_file()
    scan_end = len(data) - 2
    with pytest.raises(InputError, match="^cut.jpg: truncated file: scan data has no end marker$"):
        decode_jpeg(data[: scan_end - 10], "cut.jpg")


def test_scan_ending_early_raises():
    data = baseline_file()
    # Keep the EOI but drop most of the scan data.
    sos = marker_offset(data, 0xDA)
    header_end = sos + 2 + struct.unpack(">H", data[sos + 2 : sos + 4])[0]
    short = data[: header_end + 20] + b"\xff\xd9"
    with pytest.raises(InputError, match="truncated or corrupt scan data"):
        decode_jpeg(short)


def test_invalid_huffman_code_raises():
    data = bytearray(baseline_file())
    sos = marker_offset(data, 0xDA)
    start = sos + 2 + struct.unpack(">H", data[sos + 2 : sos + 4])[0]
    # Stuffed 0xFF bytes decode as runs of 1-bits, which no code may be.
    data[start : start + 8] = b"\xff\x00" * 4
    with pytest.raises(InputError, match="invalid Huffman code"):
        decode_jpeg(bytes(data))


def test_restart_marker_out_of_order_raises():
    image = np.random.default_rng(9).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    data = bytearray(encode_jpeg(image, JpegSettings(quality=75, restart_interval=1)))
    first = data.find(b"\xff\xd0")
    data[first + 1] = 0xD3
    with pytest.raises(InputError, match=r"RST0 \(0xFFD0\) was expected"):
        decode_jpeg(bytes(data))


def test_missing_restart_marker_raises():
    image = np.random.default_rng(10).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    data = encode_jpeg(image, JpegSettings(quality=75, restart_interval=1))
    last = max(data.rfind(bytes([0xFF, marker])) for marker in range(0xD0, 0xD8))
    with pytest.raises(InputError, match="restart markers where"):
        decode_jpeg(data[:last] + data[last + 2 :])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d[2:], "missing SOI marker"),
        (lambda d: d[:2] + b"\x12\x34" + d[2:], "expected a marker"),
        (lambda d: d.replace(b"\xff\xdb", b"\xff\x02", 1), "unknown marker 0xFF02"),
        (lambda d: d.replace(b"\xff\xc0\x00\x11", b"\xff\xc0\x00\x12", 1), "invalid SOF segment length"),
        (lambda d: d.replace(b"\xff\xdb\x00\x43\x00", b"\xff\xdb\x00\x43\x05", 1), "invalid DQT table header"),
        (lambda d: d.replace(b"\xff\xc4\x00", b"\xff\xc4\xff", 1), "truncated file inside marker"),
        (lambda d: d.replace(b"\xff\xda", b"\xff\xd0", 1), "unexpected marker 0xFFD0"),
    ],
)
def test_malformed_header_raises(edit, message):
    with pytest.raises(InputError, match=message):
        decode_jpeg(edit(baseline_file()))


def test_bad_sampling_factor_raises():
    data = bytearray(baseline_file())
    data[marker_offset(data, 0xC0) + 11] = 0x05  # component 1 sampled 0x5
    with pytest.raises(InputError, match="invalid sampling factors 0x5"):
        decode_jpeg(bytes(data))


def test_missing_quantization_table_raises():
    data = bytearray(baseline_file())
    data[marker_offset(data, 0xC0) + 12] = 3  # component 1 uses undefined table 3
    with pytest.raises(InputError, match="missing quantization table 3"):
        decode_jpeg(bytes(data))


def test_oversubscribed_huffman_table_raises():
    data = bytearray(baseline_file())
    dht = marker_offset(data, 0xC4)
    # Move two codes from length 3 to length 1, which leaves no room.
    assert data[dht + 5 : dht + 8] == b"\x00\x01\x05"
    data[dht + 5 : dht + 8] = b"\x02\x01\x03"
    with pytest.raises(InputError, match="invalid Huffman table"):
        decode_jpeg(bytes(data))


def test_forged_large_frame_raises_quickly():
    data = bytearray(baseline_file())
    offset = marker_offset(data, 0xC0)
    data[offset + 5 : offset + 9] = struct.pack(">HH", 9000, 9000)
    with pytest.raises(InputError, match="too few bytes for the image size"):
        decode_jpeg(bytes(data))


def test_random_corruption_raises_only_input_error():
    rng = np.random.default_rng(11)
    sources = [
        baseline_file(),
        encode_jpeg(rng.integers(0, 256, (21, 35, 3), dtype=np.uint8), JpegSettings(subsampling="4:4:4", restart_interval=2)),
        encode_jpeg(rng.integers(0, 256, (21, 35), dtype=np.uint8), JpegSettings(subsampling="gray", optimize=True)),
    ]
    outcomes = {"decoded": 0, "rejected": 0}
    for data in sources:
        for _ in range(400):
            corrupt = bytearray(data)
            for _ in range(int(rng.integers(1, 4))):
                corrupt[int(rng.integers(0, len(corrupt)))] = int(rng.integers(0, 256))
            try:
                decode_jpeg(bytes(corrupt))
            except InputError as error:
                assert "\n" not in str(error)
                outcomes["rejected"] += 1
            else:
                outcomes["decoded"] += 1
    assert outcomes["rejected"] > 0

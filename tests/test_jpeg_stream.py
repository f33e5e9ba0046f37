"""Encoder settings and the compact stream format (tables plus payload)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from codesign.errors import InputError
from codesign.jpeg import (
    JpegSettings,
    compression_report,
    decode_jpeg,
    decode_payload,
    encode_jpeg,
    extract_payload,
    join_jpeg,
    parse_jpeg,
    split_jpeg,
)
from codesign.jpeg.vectors import random_coefficients, write_jpeg

SAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "jpeg-samples"
needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason=f"JPEG sample folder {SAMPLES} is absent"
)


def pillow_decode(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    return np.asarray(image.convert("L" if image.mode == "L" else "RGB"))


def make_image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    image = np.stack([4 * columns, 5 * rows, 2 * (rows + columns)], axis=-1) + rng.normal(0, 12, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


# --- Encoder -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subsampling", "expected_sampling"),
    [("4:2:0", [(2, 2), (1, 1), (1, 1)]), ("4:2:2", [(2, 1), (1, 1), (1, 1)]), ("4:4:4", [(1, 1)] * 3), ("gray", [(1, 1)])],
)
def test_encoder_subsampling_in_frame(subsampling, expected_sampling):
    data = encode_jpeg(make_image(1), JpegSettings(quality=80, subsampling=subsampling))
    frame = parse_jpeg(data).frame
    assert frame.sof_marker == 0xC0
    assert [(c.h_sampling, c.v_sampling) for c in frame.components] == expected_sampling
    assert (frame.width, frame.height) == (64, 48)


def test_encoder_writes_custom_qtables_verbatim():
    luminance = tuple(1 + (row * 8 + column) % 50 for row in range(8) for column in range(8))
    chrominance = tuple([99] * 64)
    data = encode_jpeg(make_image(2), JpegSettings(quality=None, qtables=(luminance, chrominance)))
    frame = parse_jpeg(data).frame
    assert frame.quant_tables == (luminance, chrominance, chrominance)
    assert np.array_equal(decode_jpeg(data), pillow_decode(data))


def test_encoder_gray_setting_converts_rgb():
    data = encode_jpeg(make_image(3), JpegSettings(quality=90, subsampling="gray"))
    assert parse_jpeg(data).frame.color_transform == "gray"
    assert decode_jpeg(data).shape == (48, 64)


def test_encoder_colour_setting_converts_gray():
    data = encode_jpeg(make_image(3)[:, :, 0], JpegSettings(quality=90, subsampling="4:2:0"))
    assert len(parse_jpeg(data).frame.components) == 3
    assert decode_jpeg(data).shape == (48, 64, 3)


def test_encoder_optimize_shrinks_file():
    image = make_image(4)
    standard = encode_jpeg(image, JpegSettings(quality=75, optimize=False))
    optimized = encode_jpeg(image, JpegSettings(quality=75, optimize=True))
    assert len(optimized) < len(standard)


def test_encoder_restart_interval_in_stream():
    data = encode_jpeg(make_image(5), JpegSettings(quality=75, restart_interval=3))
    assert parse_jpeg(data).scans[0].restart_interval == 3


def test_encoder_accepts_pillow_image():
    image = Image.fromarray(make_image(6))
    data = encode_jpeg(image, JpegSettings(quality=70))
    assert decode_jpeg(data).shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"quality": 0}, "invalid quality 0"),
        ({"quality": 101}, "invalid quality 101"),
        ({"subsampling": "4:1:1"}, "invalid subsampling"),
        ({"qtables": ((1,) * 64,)}, "quality must be None"),
        ({"quality": None, "qtables": ((1,) * 63,)}, "63 values instead of 64"),
        ({"quality": None, "qtables": ((256,) * 64,)}, "values 1..255"),
        ({"quality": None, "qtables": ((0,) * 64,)}, "values 1..255"),
        ({"quality": None, "qtables": ((1,) * 64,) * 3}, "expected 1..2 tables"),
        ({"quality": None, "subsampling": "gray", "qtables": ((1,) * 64,) * 2}, "expected 1..1 tables"),
        ({"restart_interval": -1}, "invalid restart_interval"),
    ],
)
def test_invalid_settings_rejected(arguments, message):
    with pytest.raises(InputError, match=message):
        JpegSettings(**arguments)


def test_invalid_image_rejected():
    with pytest.raises(InputError, match="expected uint8"):
        encode_jpeg(np.zeros((8, 8, 3), dtype=np.float32), JpegSettings())
    with pytest.raises(InputError, match=r"expected \(H, W\) or \(H, W, 3\)"):
        encode_jpeg(np.zeros((8, 8, 4), dtype=np.uint8), JpegSettings())


def test_settings_are_hashable_and_frozen():
    settings = JpegSettings(quality=None, qtables=[[2] * 64])
    assert settings.qtables == ((2,) * 64,)
    assert hash(settings) == hash(JpegSettings(quality=None, qtables=((2,) * 64,)))
    with pytest.raises(AttributeError):
        settings.quality = 50  # type: ignore[misc]


# --- Split and join ------------------------------------------------------------


@needs_samples
@pytest.mark.parametrize(
    "file_name",
    ["HappyFish.jpg", "baboon.jpg", "ellipses.jpg", "home.jpg", "starry_night.jpg"],
)
def test_sample_split_join_round_trip(file_name):
    data = (SAMPLES / file_name).read_bytes()
    tables, payload = split_jpeg(data, file_name)
    rebuilt = join_jpeg(tables, payload)
    expected = pillow_decode(data)
    assert np.array_equal(pillow_decode(rebuilt), expected)
    assert np.array_equal(decode_payload(tables, payload, file_name), expected)
    assert split_jpeg(rebuilt) == (tables, payload)


@pytest.mark.parametrize(
    "settings",
    [
        JpegSettings(quality=75, subsampling="4:2:0"),
        JpegSettings(quality=90, subsampling="4:4:4", optimize=True),
        JpegSettings(quality=60, subsampling="gray", restart_interval=2),
        JpegSettings(quality=None, subsampling="4:2:2", qtables=((5,) * 64, (9,) * 64), restart_interval=1),
    ],
    ids=["420", "444-optimized", "gray-restart", "422-qtables-restart"],
)
def test_generated_split_join_round_trip(settings):
    data = encode_jpeg(make_image(7, 37, 53), settings)
    tables, payload = split_jpeg(data)
    expected = pillow_decode(data)
    assert np.array_equal(pillow_decode(join_jpeg(tables, payload)), expected)
    assert np.array_equal(decode_payload(tables, payload), expected)


def test_payload_is_stuffed_scan_data():
    data = encode_jpeg(make_image(8), JpegSettings(quality=95, restart_interval=2))
    tables, payload = split_jpeg(data)
    assert data.endswith(payload + b"\xff\xd9")
    assert data.startswith(tables.header_bytes()[:2])
    # Every 0xFF in the payload is stuffing (0xFF00) or an RSTn marker.
    followers = {payload[i + 1] for i in range(len(payload) - 1) if payload[i] == 0xFF}
    assert followers <= {0x00, *range(0xD0, 0xD8)}
    assert 0xD0 in followers


def test_join_keeps_rgb_transform_and_sof1():
    rng = np.random.default_rng(9)
    sampling = [(1, 2), (1, 1), (1, 1)]
    coefficients = random_coefficients(rng, sampling, 20, 20, scale=4)
    data = write_jpeg(coefficients, sampling, 20, 20, [[2] * 63 + [400]], sof_marker=0xC1, color_transform="rgb")
    tables, payload = split_jpeg(data)
    rebuilt = join_jpeg(tables, payload)
    frame = parse_jpeg(rebuilt).frame
    assert frame.color_transform == "rgb"
    assert frame.sof_marker == 0xC1
    assert np.array_equal(pillow_decode(rebuilt), pillow_decode(data))


def test_multi_scan_file_has_no_compact_form():
    rng = np.random.default_rng(10)
    sampling = [(1, 1)] * 3
    data = write_jpeg(random_coefficients(rng, sampling, 16, 16), sampling, 16, 16, [[4] * 64], separate_scans=True)
    assert np.array_equal(decode_jpeg(data), pillow_decode(data))
    with pytest.raises(InputError, match="^multi.jpg: JPEG with 3 scans has no compact stream form"):
        split_jpeg(data, "multi.jpg")


def test_extract_payload_with_fixed_tables():
    settings = JpegSettings(quality=80, subsampling="4:2:0", restart_interval=4)
    tables, _ = split_jpeg(encode_jpeg(make_image(11), settings))
    for seed in range(12, 16):
        data = encode_jpeg(make_image(seed), settings)
        payload = extract_payload(data, tables, f"image{seed}.jpg")
        assert np.array_equal(decode_payload(tables, payload), pillow_decode(data))


@pytest.mark.parametrize(
    ("image", "settings", "message"),
    [
        (make_image(17, 32, 32), JpegSettings(quality=80), "image size 32x32 differs from the stream format's 64x48"),
        (make_image(17), JpegSettings(quality=80, optimize=True), "Huffman tables differ"),
        (make_image(17), JpegSettings(quality=81), "quantization tables differ"),
        (make_image(17), JpegSettings(quality=80, subsampling="4:4:4"), "components or sampling factors differ"),
        (make_image(17), JpegSettings(quality=80, restart_interval=1), "restart interval 1 differs"),
    ],
    ids=["size", "optimize", "quality", "subsampling", "restart"],
)
def test_extract_payload_rejects_other_format(image, settings, message):
    tables, _ = split_jpeg(encode_jpeg(make_image(16), JpegSettings(quality=80)))
    with pytest.raises(InputError, match=f"^other.jpg: {message}"):
        extract_payload(encode_jpeg(image, settings), tables, "other.jpg")


def test_truncated_payload_raises():
    tables, payload = split_jpeg(encode_jpeg(make_image(18), JpegSettings(quality=80)))
    for length in (0, 1, len(payload) // 2, len(payload) - 20):
        with pytest.raises(InputError):
            decode_payload(tables, payload[:length])


def test_corrupt_payload_raises():
    tables, payload = split_jpeg(encode_jpeg(make_image(19), JpegSettings(quality=80)))
    corrupt = payload[:40] + b"\xff\x00" * 8 + payload[56:]
    with pytest.raises(InputError, match="invalid Huffman code"):
        decode_payload(tables, corrupt)


def test_compression_report():
    settings = JpegSettings(quality=75, subsampling="4:2:0")
    tables, _ = split_jpeg(encode_jpeg(make_image(20), settings))
    payloads = [extract_payload(encode_jpeg(make_image(seed), settings), tables) for seed in range(20, 24)]
    report = compression_report(tables, payloads)
    sizes = [len(payload) for payload in payloads]
    assert report.images == 4
    assert report.raw_rgb_bytes == 48 * 64 * 3
    assert report.mean_payload_bytes == sum(sizes) / 4
    assert report.max_payload_bytes == max(sizes)
    assert report.header_bytes == len(tables.header_bytes())
    assert report.compression_ratio == pytest.approx(48 * 64 * 3 / (sum(sizes) / 4))
    assert report.bits_per_pixel == pytest.approx(8 * sum(sizes) / 4 / (48 * 64))
    assert "4 images" in report.summary()
    with pytest.raises(ValueError, match="at least one payload"):
        compression_report(tables, [])

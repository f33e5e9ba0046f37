"""The HLS C++ JPEG decoder against the numpy decoder model, pixel for pixel.

One driver binary contains every stream format below, so the module compiles
once. Each test decodes payloads in a child process and compares with
``decode_payload``, which the model tests compare with Pillow.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from codesign.errors import InputError
from codesign.jpeg import JpegSettings, decode_payload, encode_jpeg, join_jpeg, split_jpeg
from codesign.jpeg import hls
from codesign.jpeg.markers import STANDARD_AC_LUMINANCE, STANDARD_DC_LUMINANCE, HuffmanTable
from codesign.jpeg.vectors import random_coefficients, write_jpeg

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed"),
]

SAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "jpeg-samples"
BASELINE_SAMPLES = [
    "HappyFish.jpg",  # 259x194 4:2:0
    "baboon.jpg",  # 4:2:2
    "building.jpg",
    "ellipses.jpg",  # greyscale, restart interval 50
    "fruits.jpg",
    "home.jpg",
    "messi5.jpg",
    "starry_night.jpg",  # 4:4:4
]
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"JPEG sample folder {SAMPLES} is absent")

RAMP_TABLE = tuple(1 + (row + column) * 12 for row in range(8) for column in range(8))
FLAT_TABLE = (3,) * 64

# Stream formats of our own encoder at the detector's 96x96 input size:
# name -> (height, width, settings).
DETECTOR_FORMATS = {
    "q25_420": (96, 96, JpegSettings(quality=25, subsampling="4:2:0")),
    "q75_420": (96, 96, JpegSettings(quality=75, subsampling="4:2:0")),
    "q95_420": (96, 96, JpegSettings(quality=95, subsampling="4:2:0")),
    "q85_444": (96, 96, JpegSettings(quality=85, subsampling="4:4:4")),
    "q60_gray": (96, 96, JpegSettings(quality=60, subsampling="gray")),
    "q80_422": (96, 96, JpegSettings(quality=80, subsampling="4:2:2")),
    "custom_420": (96, 96, JpegSettings(quality=None, subsampling="4:2:0", qtables=(RAMP_TABLE, FLAT_TABLE))),
    "custom_444": (96, 96, JpegSettings(quality=None, subsampling="4:4:4", qtables=(FLAT_TABLE, (255,) * 64))),
    "custom_gray": (96, 96, JpegSettings(quality=None, subsampling="gray", qtables=(RAMP_TABLE,))),
}
# Sizes that are no multiple of the MCU size, and restart intervals.
EDGE_FORMATS = {
    "odd_420": (45, 61, JpegSettings(quality=80, subsampling="4:2:0")),
    "odd_422": (37, 53, JpegSettings(quality=80, subsampling="4:2:2")),
    "odd_444": (9, 21, JpegSettings(quality=70, subsampling="4:4:4")),
    "restart_420": (96, 96, JpegSettings(quality=75, subsampling="4:2:0", restart_interval=5)),
    "restart_odd_420": (50, 70, JpegSettings(quality=90, subsampling="4:2:0", restart_interval=1)),
    "restart_gray": (33, 40, JpegSettings(quality=85, subsampling="gray", restart_interval=2)),
}
IMAGES_PER_FORMAT = 3

# Files that Pillow cannot write, from the coefficient-level writer:
# name -> (sampling, width, height, write_jpeg options). Chroma widths of 1
# and 2 select sample replication instead of fancy upsampling.
CRAFTED_FORMATS = {
    "narrow_420": ([(2, 2), (1, 1), (1, 1)], 3, 5, {}),
    "narrow_422": ([(2, 1), (1, 1), (1, 1)], 4, 3, {}),
    "fancy_edge_420": ([(2, 2), (1, 1), (1, 1)], 5, 17, {"restart_interval": 2}),
    "tall_440": ([(1, 2), (1, 1), (1, 1)], 2, 33, {}),
    "wide_440": ([(1, 2), (1, 1), (1, 1)], 40, 17, {"restart_interval": 3}),
    "single_pixel_420": ([(2, 2), (1, 1), (1, 1)], 1, 1, {}),
    "adobe_rgb_420": ([(2, 2), (1, 1), (1, 1)], 17, 9, {"color_transform": "rgb"}),
    "gray_sampled_2x2": ([(2, 2)], 17, 9, {"restart_interval": 3}),
}


def make_image(seed: int, height: int, width: int) -> np.ndarray:
    """Return an RGB image with gradients, noise and hard edges."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    image = np.stack([3 * columns, 2 * rows, 128 + 120 * np.sin((rows + columns) / 7.0)], axis=-1)
    image = image + rng.normal(0, 18, (height, width, 3))
    top, left = height // 3, width // 4
    image[top : top + height // 3, left : left + width // 3] = rng.integers(0, 256, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def pillow_decode(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    return np.asarray(image.convert("L" if image.mode == "L" else "RGB"))


def encoded_streams(formats: dict) -> dict[str, tuple]:
    """Encode IMAGES_PER_FORMAT images per format into name -> (tables, payloads)."""
    streams = {}
    for index, (name, (height, width, settings)) in enumerate(formats.items()):
        tables = None
        payloads = []
        for image in range(IMAGES_PER_FORMAT):
            data = encode_jpeg(make_image(100 * index + image, height, width), settings)
            image_tables, payload = split_jpeg(data, name)
            assert tables is None or image_tables == tables
            tables = image_tables
            payloads.append(payload)
        streams[name] = (tables, payloads)
    return streams


def crafted_streams() -> dict[str, tuple]:
    rng = np.random.default_rng(7)
    streams = {}
    for name, (sampling, width, height, options) in CRAFTED_FORMATS.items():
        tables = None
        payloads = []
        for _ in range(2):
            coefficients = random_coefficients(rng, sampling, width, height)
            data = write_jpeg(coefficients, sampling, width, height, [[4] * 64, [6] * 64], **options)
            tables, payload = split_jpeg(data, name)
            payloads.append(payload)
        streams[name] = (tables, payloads)
    streams["extreme_coefficients"] = extreme_stream(rng)
    streams["dc_wrap_444"] = dc_wrap_stream(rng)
    return streams


def extreme_stream(rng: np.random.Generator) -> tuple:
    """Return 4:2:0 payloads with coefficients up to +-32767 and 16-bit tables.

    Dequantized values reach 2**30 and the IDCT output wraps in the
    range-limit table, which the HLS decoder must reproduce bit for bit.
    """
    sampling = [(2, 2), (1, 1), (1, 1)]
    quant_tables = [list(rng.integers(1, 65536, 64)), list(rng.integers(30000, 65536, 64))]
    payloads = []
    for _ in range(2):
        coefficients = random_coefficients(rng, sampling, 24, 20)
        for array in coefficients:
            array[:] = rng.integers(-32767, 32768, array.shape) * (rng.random(array.shape) < 0.3)
            # DC differences must fit 15 magnitude bits.
            array[:, :, 0] = rng.integers(-16383, 16384, array.shape[:2])
        data = write_jpeg(coefficients, sampling, 24, 20, quant_tables, sof_marker=0xC1)
        tables, payload = split_jpeg(data)
        payloads.append(payload)
    return tables, payloads


def dc_wrap_stream(rng: np.random.Generator) -> tuple:
    """Return 4:4:4 payloads whose DC predictions run past the int16 range.

    With one block per component and MCU, coding order is raster order, so
    a cumulative sum of large differences gives DC values that wrap.
    """
    sampling = [(1, 1)] * 3
    quant_tables = [list(rng.integers(1, 65536, 64))]
    payloads = []
    for _ in range(2):
        coefficients = random_coefficients(rng, sampling, 40, 24)
        for array in coefficients:
            array[:] = rng.integers(-32767, 32768, array.shape) * (rng.random(array.shape) < 0.2)
            differences = rng.integers(20000, 32768, array.shape[0] * array.shape[1])
            array[:, :, 0] = np.cumsum(differences).reshape(array.shape[:2])
        data = write_jpeg(coefficients, sampling, 40, 24, quant_tables, sof_marker=0xC1)
        tables, payload = split_jpeg(data)
        payloads.append(payload)
    return tables, payloads


def sample_streams() -> dict[str, tuple]:
    streams = {}
    if SAMPLES.is_dir():
        for file_name in BASELINE_SAMPLES:
            tables, payload = split_jpeg((SAMPLES / file_name).read_bytes(), file_name)
            streams[sample_config_name(file_name)] = (tables, [payload])
    return streams


def sample_config_name(file_name: str) -> str:
    return "sample_" + Path(file_name).stem.lower()


@pytest.fixture(scope="module")
def streams() -> dict[str, tuple]:
    return {
        **encoded_streams(DETECTOR_FORMATS),
        **encoded_streams(EDGE_FORMATS),
        **crafted_streams(),
        **sample_streams(),
    }


@pytest.fixture(scope="module")
def program(streams, tmp_path_factory) -> hls.DecoderProgram:
    configs = {name: tables for name, (tables, _) in streams.items()}
    return hls.build_decoder(configs, tmp_path_factory.mktemp("jpeg_hls"))


def assert_hls_matches_model(program: hls.DecoderProgram, name: str, tables, payloads: list[bytes]) -> None:
    outputs = program.decode(name, payloads)
    assert len(outputs) == len(payloads)
    for index, (payload, output) in enumerate(zip(payloads, outputs)):
        expected = decode_payload(tables, payload, name)
        assert output.shape == expected.shape, f"{name} image {index}"
        differing = int(np.count_nonzero(output != expected))
        assert differing == 0, f"{name} image {index}: {differing} samples differ from the model"


# --- Exactness ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DETECTOR_FORMATS))
def test_detector_size_matches_model(program, streams, name):
    tables, payloads = streams[name]
    assert_hls_matches_model(program, name, tables, payloads)


@pytest.mark.parametrize("name", sorted(DETECTOR_FORMATS))
def test_detector_size_model_matches_pillow(streams, name):
    tables, payloads = streams[name]
    for payload in payloads:
        expected = pillow_decode(join_jpeg(tables, payload))
        assert np.array_equal(decode_payload(tables, payload), expected)


@pytest.mark.parametrize("name", sorted(EDGE_FORMATS))
def test_edge_format_matches_model(program, streams, name):
    tables, payloads = streams[name]
    assert_hls_matches_model(program, name, tables, payloads)


@pytest.mark.parametrize("name", [*sorted(CRAFTED_FORMATS), "extreme_coefficients", "dc_wrap_444"])
def test_crafted_stream_matches_model(program, streams, name):
    tables, payloads = streams[name]
    assert_hls_matches_model(program, name, tables, payloads)


@needs_samples
@pytest.mark.parametrize("file_name", BASELINE_SAMPLES)
def test_sample_matches_model(program, streams, file_name):
    name = sample_config_name(file_name)
    tables, payloads = streams[name]
    assert hls.hardware_support_problem(tables) is None
    assert_hls_matches_model(program, name, tables, payloads)


def test_detector_formats_cover_subsamplings(streams):
    samplings = set()
    quant_tables = set()
    for name in DETECTOR_FORMATS:
        frame = streams[name][0].frame
        samplings.add(tuple((c.h_sampling, c.v_sampling) for c in frame.components))
        quant_tables.add(frame.quant_tables)
    assert ((2, 2), (1, 1), (1, 1)) in samplings
    assert ((1, 1), (1, 1), (1, 1)) in samplings
    assert ((1, 1),) in samplings
    assert len(quant_tables) >= 3


# --- Corrupt and truncated payloads ---------------------------------------------


def corrupt_variants(payload: bytes, rng: np.random.Generator) -> list[bytes]:
    variants = [
        b"",
        b"\xff",
        b"\xff" * 64,
        b"\x00" * 500,
        bytes(rng.integers(0, 256, 3000, dtype=np.uint8)),
        payload[: len(payload) // 2],
        payload[:1],
        payload + payload,
        b"\xff\xd0" * 50,
        b"\xff\xd9" + payload,
    ]
    for _ in range(6):
        corrupt = bytearray(payload)
        for _ in range(int(rng.integers(1, 6))):
            corrupt[int(rng.integers(0, len(corrupt)))] = int(rng.integers(0, 256))
        variants.append(bytes(corrupt))
    return variants


@pytest.mark.parametrize("name", ["restart_odd_420", "q85_444", "restart_gray"])
def test_corrupt_payloads_terminate(program, streams, name):
    tables, payloads = streams[name]
    variants = corrupt_variants(payloads[0], np.random.default_rng(len(name)))
    # A valid payload after each corrupt one proves that the decoder read
    # exactly the corrupt payload's bytes, so the stream stays in step.
    stream = []
    for variant in variants:
        stream += [variant, payloads[1]]
    outputs = program.decode(name, stream, timeout=60)
    expected = decode_payload(tables, payloads[1])
    for index in range(len(variants)):
        assert outputs[2 * index].shape == expected.shape, f"variant {index}"
        assert np.array_equal(outputs[2 * index + 1], expected), f"valid payload after variant {index}"


# --- Configuration and glue -----------------------------------------------------


@pytest.mark.parametrize(
    "table",
    [HuffmanTable(*STANDARD_DC_LUMINANCE), HuffmanTable(*STANDARD_AC_LUMINANCE)],
    ids=["dc_luminance", "ac_luminance"],
)
def test_canonical_table_decodes_every_code(table):
    limits, offsets = hls.canonical_decoding_table(table)
    code = 0
    position = 0
    for length, count in enumerate(table.counts, start=1):
        for _ in range(count):
            # The decoder takes the shortest length whose prefix is below the limit.
            for shorter in range(1, length):
                assert code >> (length - shorter) >= limits[shorter]
            assert code < limits[length]
            assert table.symbols[offsets[length] + code] == table.symbols[position]
            code += 1
            position += 1
        code <<= 1


def test_config_header_values(streams):
    tables, _ = streams["restart_odd_420"]
    header = hls.config_header(tables, "stream_format")
    assert "struct stream_format {" in header
    assert "static const unsigned width = 70;" in header
    assert "static const unsigned height = 50;" in header
    assert "static const unsigned h_samp = 2;" in header
    assert "static const unsigned v_samp = 2;" in header
    assert "static const unsigned restart_interval = 1;" in header
    assert "static const bool ycbcr_to_rgb = true;" in header
    assert "{{" not in header


def test_config_header_wraps_16bit_quant(streams):
    tables, _ = streams["extreme_coefficients"]
    header = hls.config_header(tables, "extreme")
    largest = max(value for table in tables.frame.quant_tables for value in table)
    assert largest > 32767
    assert re.search(rf"[{{ ]{largest - 65536}[,}}]", header)
    assert not re.search(rf"[{{ ]{largest}[,}}]", header)


def test_unsupported_sampling_rejected():
    rng = np.random.default_rng(3)
    sampling = [(2, 2), (2, 1), (1, 2)]
    data = write_jpeg(random_coefficients(rng, sampling, 16, 16), sampling, 16, 16, [[4] * 64])
    tables, _ = split_jpeg(data)
    with pytest.raises(InputError, match="chroma must be 1x1"):
        hls.config_header(tables, "mixed")


def test_invalid_config_name_rejected(streams):
    tables, _ = streams["q75_420"]
    with pytest.raises(InputError, match="invalid configuration name"):
        hls.config_header(tables, "2bad-name")


def test_unknown_config_rejected(program):
    with pytest.raises(InputError, match="unknown configuration 'missing'"):
        program.decode("missing", [b""])


def test_rebuild_reuses_binary(program):
    again = hls.build_decoder(program.configs, program.binary.parent)
    assert again.build_seconds == 0.0
    assert again.binary == program.binary

"""JPEG front-end: convert --jpeg-frontend, exact C simulation from frames, host-side checks, cost model.

One front-end project (quality 50, 4:2:0, 6 testbench images) is converted
and compiled per module, because conversion and the g++ build take most of
this module's run time.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from codesign.boards import load_board
from codesign.cli import main
from codesign.errors import InputError
from codesign.estimate.jpeg import estimate_frontend, throughput
from codesign.jpeg import JpegSettings, encode_jpeg, split_jpeg
from codesign.jpeg import hls
from codesign.jpeg.frontend import (
    FRAME_HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    TESTBENCH_ITEM_MARKER,
    build_frontend,
    codes_to_frames,
    frames_to_codes,
    decode_frame,
    frame_payload,
    parse_qtables,
    prepare_frame,
    split_frame,
)
from codesign.jpeg.frontend_project import (
    distinct_quant_tables,
    frame_codes_to_payloads,
    load_frontend,
    tables_from_dict,
)
from codesign.project import load_project
from codesign.runtime import Accelerator, InvalidInputError
from codesign.runtime.frames import FRAME_FORMAT, FRAME_SLOT_WORDS, FrameEncoder
from codesign import tensorfile

SETTINGS = JpegSettings(quality=50, subsampling="4:2:0")
CSIM_IMAGES = 6


@pytest.fixture(scope="module")
def frontend_project(tmp_path_factory):
    """Front-end project of the bundled detector, converted through the CLI."""
    root = tmp_path_factory.mktemp("jpeg_frontend") / "project"
    status = main(["-q", "convert", "--out", str(root), "--tb-images", str(CSIM_IMAGES), "--jpeg-frontend",
                   "--jpeg-quality", "50", "--jpeg-subsampling", "4:2:0"])
    assert status == 0
    return root


def _random_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(96, 96, 3), dtype=np.uint8)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_csim_frames_exact(frontend_project, tmp_path):
    report_path = tmp_path / "csim.json"
    status = main(["-q", "csim", str(frontend_project), "--count", str(CSIM_IMAGES), "--json", str(report_path)])
    report = json.loads(report_path.read_text())

    assert status == 0
    assert report["exact_fraction"] == 1.0
    assert report["values"] == CSIM_IMAGES * 6 * 6 * 15
    assert report["detections_identical"] is True
    assert report["jpeg_frontend"]["frames"] == CSIM_IMAGES
    # The testbench read frames: compressed bytes, far fewer than raw RGB.
    inputs = tensorfile.read(frontend_project / "csim" / "inputs.bin")
    assert inputs.shape[0] == CSIM_IMAGES
    assert inputs.shape[1] < 96 * 96 * 3 // 4


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_testbench_rejects_bad_length(frontend_project, tmp_path):
    """A frame whose length field exceeds its item is a data error (exit 2), not a decode."""
    main(["-q", "csim", str(frontend_project), "--count", "1"])  # builds the binary if no earlier test did
    codes = tensorfile.read(frontend_project / "hls" / "tb_data" / "inputs.bin")[:1].copy()
    marker = len(TESTBENCH_ITEM_MARKER)
    codes[0, marker], codes[0, marker + 1] = 0xFF, 0xFF
    inputs = tmp_path / "inputs.bin"
    tensorfile.write(inputs, codes)
    binary = frontend_project / "csim" / "codesign_tb"

    result = subprocess.run([str(binary), str(inputs), "0", "1", str(tmp_path / "out.bin")],
                            capture_output=True, text=True)

    assert result.returncode == 2
    assert "declares a 65535-byte payload" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_testbench_rejects_pixel_codes(frontend_project, tmp_path):
    """Pixel codes, as a project without the front-end reads them, must not be decoded as frames."""
    main(["-q", "csim", str(frontend_project), "--count", "1"])  # builds the binary if no earlier test did
    inputs = tmp_path / "pixels.bin"
    tensorfile.write(inputs, _random_image()[None])
    binary = frontend_project / "csim" / "codesign_tb"

    result = subprocess.run([str(binary), str(inputs), "0", "1", str(tmp_path / "out.bin")],
                            capture_output=True, text=True)

    assert result.returncode == 2
    assert "not pixel codes" in result.stderr


def test_recorded_tables_match_encoder(frontend_project):
    project = load_project(frontend_project)
    entry = project.meta["jpeg_frontend"]
    encoder_tables, _ = split_jpeg(encode_jpeg(_random_image(), SETTINGS))

    assert entry["settings"]["quality"] == 50
    assert entry["settings"]["subsampling"] == "4:2:0"
    assert tables_from_dict(entry["tables"]) == encoder_tables
    assert (frontend_project / "jpeg_header.bin").read_bytes() == encoder_tables.header_bytes()
    assert load_frontend(project).tables == encoder_tables
    # The decoder layer is compiled with the same tables.
    top = (frontend_project / "hls" / "firmware" / "myproject.cpp").read_text()
    call = re.search(r"nnet::jpeg_decoder<input_t, \w+, (config\d+)>\(global_in, ", top)
    assert call is not None
    parameters = (frontend_project / "hls" / "firmware" / "parameters.h").read_text()
    assert hls.config_header(encoder_tables, call.group(1), kernel_include="nnet_utils/jpeg_decoder.h") in parameters
    # The quantization table file reproduces the format when fed back as --jpeg-qtables.
    qtables = parse_qtables((frontend_project / "jpeg_qtables.txt").read_text())
    custom = JpegSettings(quality=None, subsampling="4:2:0", qtables=qtables)
    assert build_frontend(custom, 96, 96).tables == encoder_tables


def test_hls4ml_top_reads_frame_bytes(frontend_project):
    """The decoder is a layer of the hls4ml top, whose input is the byte stream."""
    firmware = frontend_project / "hls" / "firmware"
    defines = (firmware / "defines.h").read_text()
    header = (firmware / "myproject.h").read_text()
    top = (firmware / "myproject.cpp").read_text()

    assert "typedef nnet::array<ap_uint<8>, 1*1> input_t;" in defines
    assert "hls::stream<input_t> &global_in" in header
    assert (firmware / "nnet_utils" / "nnet_jpeg_decoder.h").is_file()
    assert (firmware / "nnet_utils" / "jpeg_decoder.h").is_file()
    # The first layer now reads the decoder's output instead of the graph input.
    decoder_output = re.search(r"nnet::jpeg_decoder<input_t, (\w+), config\d+>\(global_in, (\w+)\);", top)
    assert decoder_output is not None
    assert f"<{decoder_output.group(1)}, " in top.split(decoder_output.group(0))[1]
    assert top.count("(global_in") == 1


def test_testbench_frames_decode_to_expected_pixels(frontend_project):
    project = load_project(frontend_project)
    front_end = load_frontend(project)
    codes = tensorfile.read(frontend_project / "hls" / "tb_data" / "inputs.bin")
    payloads = frame_codes_to_payloads(codes)

    assert len(payloads) == CSIM_IMAGES
    for payload in payloads:
        pixels = decode_frame(front_end, frame_payload(payload))
        assert pixels.shape == (96, 96, 3)


def test_jpeg_frames_rejects_other_tables(frontend_project, tmp_path, capsys):
    other = tmp_path / "quality51.jpg"
    other.write_bytes(encode_jpeg(_random_image(), JpegSettings(quality=51, subsampling="4:2:0")))

    status = main(["jpeg-frames", str(frontend_project), str(other), "--out", str(tmp_path / "frames.bin")])
    error = capsys.readouterr().err

    assert status == 2
    assert len(error.strip().splitlines()) == 1
    assert "quantization tables differ" in error
    assert "quality51.jpg" in error
    assert not (tmp_path / "frames.bin").exists()


def test_jpeg_frames_rejects_other_subsampling(frontend_project, tmp_path, capsys):
    other = tmp_path / "444.jpg"
    other.write_bytes(encode_jpeg(_random_image(), JpegSettings(quality=50, subsampling="4:4:4")))

    status = main(["jpeg-frames", str(frontend_project), str(other), "--out", str(tmp_path / "frames.bin")])

    assert status == 2
    assert "sampling factors differ" in capsys.readouterr().err


def test_jpeg_frames_writes_back_to_back_frames(frontend_project, tmp_path):
    images = [encode_jpeg(_random_image(seed), SETTINGS) for seed in range(2)]
    paths = []
    for index, data in enumerate(images):
        paths.append(tmp_path / f"image{index}.jpg")
        paths[-1].write_bytes(data)
    out = tmp_path / "frames.bin"

    status = main(["jpeg-frames", str(frontend_project), *map(str, paths), "--out", str(out)])

    assert status == 0
    payloads = [split_jpeg(data)[1] for data in images]
    assert out.read_bytes() == b"".join(frame_payload(payload) for payload in payloads)


def test_frame_format_round_trip():
    payload = bytes(range(256)) * 3
    frame = frame_payload(payload)

    assert frame[:FRAME_HEADER_BYTES] == len(payload).to_bytes(2, "big")
    assert split_frame(frame) == payload
    with pytest.raises(InputError, match="declares a 768-byte payload, but 767 bytes follow"):
        split_frame(frame[:-1])
    with pytest.raises(InputError, match="exceeds the 65535 bytes"):
        frame_payload(bytes(MAX_PAYLOAD_BYTES + 1))


def test_testbench_items_round_trip():
    frames = [frame_payload(bytes([1, 2, 3])), frame_payload(bytes(range(40)))]
    codes = frames_to_codes(frames)

    assert codes.shape == (2, 4 + 42)
    assert bytes(codes[0, :4]) == TESTBENCH_ITEM_MARKER
    assert codes_to_frames(codes) == frames
    with pytest.raises(InputError, match="the b'JPGF' marker is missing"):
        codes_to_frames(np.zeros((1, 50), dtype=np.uint8))


def test_prepare_frame_rejects_other_size():
    front_end = build_frontend(SETTINGS, 96, 96)
    small = encode_jpeg(np.zeros((64, 96, 3), dtype=np.uint8), SETTINGS)

    with pytest.raises(InputError, match="image size 96x64 differs"):
        prepare_frame(front_end, small, "small.jpg")


def test_greyscale_frames_fill_three_channels():
    front_end = build_frontend(JpegSettings(quality=75, subsampling="gray"), 96, 96)
    frame = prepare_frame(front_end, encode_jpeg(_random_image(), front_end.settings))

    pixels = decode_frame(front_end, frame)

    assert pixels.shape == (96, 96, 3)
    assert np.array_equal(pixels[..., 0], pixels[..., 1])
    assert np.array_equal(pixels[..., 0], pixels[..., 2])


def test_parse_qtables_rejects_partial_table():
    with pytest.raises(InputError, match="contains 63 values"):
        parse_qtables(" ".join(["16"] * 63))
    assert parse_qtables("# luma\n" + ", ".join(["2"] * 64)) == ((2,) * 64,)


def test_convert_options_need_frontend_flag(tmp_path, capsys):
    status = main(["convert", "--out", str(tmp_path / "p"), "--jpeg-quality", "50"])

    assert status == 2
    assert "--jpeg-quality needs --jpeg-frontend" in capsys.readouterr().err


def test_throughput_takes_slowest_rate():
    board = load_board("pynq-z2")  # 600 MB/s host link, 100 MHz
    assert board.host_link.bandwidth_mb_s == 600
    assert board.clock_mhz == 100

    decoder_bound = throughput(board, bytes_per_image=1000, decoder_cycles=50_000, cnn_cycles=10_000)
    link_bound = throughput(board, bytes_per_image=600_000, decoder_cycles=50_000, cnn_cycles=10_000)
    cnn_bound = throughput(board, bytes_per_image=27_648, decoder_cycles=1, cnn_cycles=10_000)

    assert decoder_bound.link_fps == pytest.approx(600_000)
    assert decoder_bound.decoder_fps == pytest.approx(2_000)
    assert decoder_bound.cnn_fps == pytest.approx(10_000)
    assert decoder_bound.fps == pytest.approx(2_000)
    assert decoder_bound.bottleneck == "JPEG decoder"
    assert link_bound.fps == pytest.approx(1_000)
    assert link_bound.bottleneck == "host link"
    assert cnn_bound.fps == pytest.approx(10_000)
    assert cnn_bound.bottleneck == "CNN"


def test_decoder_cycles_follow_documented_constants():
    """96x96 4:2:0 has 6 x 6 MCUs of 6 blocks; with no AC symbols the IDCT stage is the slowest."""
    tables = build_frontend(SETTINGS, 96, 96).tables
    board = load_board("aws-f1")

    estimate = estimate_frontend(tables, board, payload_bytes=500, ac_symbols_per_block=0)
    stages = {stage.name: stage for stage in estimate.stages}

    assert stages["unstuff_frame"].ii_cycles == 2 + 500 + 3
    assert stages["decode_huffman"].ii_cycles == 216 * (8 + 32 + 64)
    assert stages["inverse_dct"].ii_cycles == 216 * (64 + 8 * 4 + 8 * 8 + 3 * 12)
    assert estimate.ii_cycles == 216 * 196
    assert estimate.bottleneck == "inverse_dct"


def test_frontend_luts_small_share_of_vu9p():
    for subsampling in ("4:4:4", "4:2:0", "gray"):
        tables = build_frontend(JpegSettings(quality=50, subsampling=subsampling), 96, 96).tables
        estimate = estimate_frontend(tables, load_board("vcu118"), payload_bytes=1000, ac_symbols_per_block=8)

        assert 0 < estimate.totals["lut"] < 0.04 * 1_182_240
        assert estimate.totals["dsp"] > 0
        assert estimate.totals["bram_18k"] > 0


def test_distinct_quant_tables_of_colour_and_grey():
    colour = build_frontend(SETTINGS, 96, 96)
    grey = build_frontend(JpegSettings(quality=50, subsampling="gray"), 96, 96)

    assert len(distinct_quant_tables(colour)) == 2
    assert len(distinct_quant_tables(grey)) == 1


def test_bitstream_project_sends_frames(frontend_project):
    """The AXI4-Stream wrapper reads frames, and the host runtime records the frame format."""
    bitstream = frontend_project / "bitstream"
    wrapper = (bitstream / "myproject_axis.cpp").read_text()
    hardware = json.loads((frontend_project / "host" / "accelerator.json").read_text())

    assert "codesign::unpack_frame(in_words, model_input);" in wrapper
    assert "frame_word_count" in wrapper
    assert (bitstream / "codesign_frames.h").is_file()
    assert hardware["input_stream"] == FRAME_FORMAT.to_dict()
    assert hardware["input_frames"]["slot_words"] == FRAME_SLOT_WORDS
    assert hardware["input_frames"]["header_sha256"] == load_project(frontend_project).meta["jpeg_frontend"][
        "header_sha256"]
    assert (frontend_project / "host" / "codesign_runtime" / "frames.py").is_file()


def test_host_encoder_writes_project_frames(frontend_project):
    """The runtime's Pillow encoder writes the frames that codesign's encoder writes."""
    project = load_project(frontend_project)
    images = np.stack([_random_image(seed) for seed in range(3)])
    encoder = FrameEncoder(frontend_project, project.meta)
    front_end = load_frontend(project)

    frames = encoder.encode(images)

    assert frames == [prepare_frame(front_end, encode_jpeg(image, SETTINGS)) for image in images]


def test_host_encoder_rejects_changed_header(frontend_project, tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(frontend_project, copy, ignore=shutil.ignore_patterns("csim", "hls", "bitstream"))
    header = copy / "jpeg_header.bin"
    header.write_bytes(header.read_bytes()[:-1] + b"\x01")

    with pytest.raises(InvalidInputError, match="differs from the header recorded"):
        FrameEncoder(copy, load_project(copy).meta)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_emulated_accelerator_runs_frames(frontend_project):
    """Accelerator.run encodes pixels into frames; the emulated device returns the expected outputs."""
    from quantize.dataset import DatasetSpec, generate, load_images

    project = load_project(frontend_project)
    pixels, _ = load_images(generate(spec=DatasetSpec(), splits=("val",)), "val", CSIM_IMAGES)
    expected = tensorfile.read(frontend_project / "hls" / "tb_data" / "expected.bin")
    frac = project.meta["output"]["frac"]

    with Accelerator.open(frontend_project, "emulated", jobs=1) as accelerator:
        values = accelerator.run(pixels)
        with pytest.raises(InvalidInputError, match="reads JPEG frames"):
            accelerator.quantize(pixels)

    np.testing.assert_array_equal(np.ldexp(expected.astype(np.float64), -frac), values.reshape(CSIM_IMAGES, -1))


# Feeds frames through a generated frame wrapper, compiled with g++: each
# frame's own words on the AXI4-Stream, or all slots at once to the XRT kernel.
FRAME_HARNESS = r"""
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>
#include "codesign_frames.h"

namespace nnet {
bool trace_enabled = false;
std::map<std::string, void *> *trace_outputs = nullptr;
size_t trace_type_size = sizeof(double);
} // namespace nnet

#ifdef KERNEL
extern "C" void codesign_kernel(const codesign::word_t *input_words, codesign::word_t *output_words, unsigned images);
#else
void myproject_axis(hls::stream<axis_word_t> &input_words, hls::stream<axis_word_t> &output_words);
#endif

int main(int argc, char **argv) {
    if (argc != 4)
        return 2;
    const unsigned images = std::atoi(argv[2]);
    std::vector<uint64_t> input(images * codesign::kFrameSlotWords);
    std::ifstream in(argv[1], std::ios::binary);
    in.read(reinterpret_cast<char *>(input.data()), input.size() * 8);
    if (!in)
        return 2;
    std::vector<uint64_t> output;
#ifdef KERNEL
    std::vector<codesign::word_t> source(input.begin(), input.end());
    std::vector<codesign::word_t> destination(images * codesign::kOutputWords);
    codesign_kernel(source.data(), destination.data(), images);
    for (const codesign::word_t &word : destination)
        output.push_back(word.to_uint64());
#else
    for (unsigned image = 0; image < images; image++) {
        const uint64_t *slot = &input[image * codesign::kFrameSlotWords];
        const unsigned words = codesign::frame_word_count(slot[0]);
        hls::stream<axis_word_t> input_words("input_words"), output_words("output_words");
        for (unsigned i = 0; i < words; i++) {
            axis_word_t word;
            word.data = slot[i];
            word.keep = -1;
            word.strb = -1;
            word.last = i == words - 1;
            input_words.write(word);
        }
        myproject_axis(input_words, output_words);
        for (unsigned i = 0; i < codesign::kOutputWords; i++)
            output.push_back(output_words.read().data.to_uint64());
        if (!input_words.empty() || !output_words.empty()) {
            std::fprintf(stderr, "words left in a stream after image %u\n", image);
            return 1;
        }
    }
#endif
    std::ofstream out(argv[3], std::ios::binary);
    out.write(reinterpret_cast<const char *>(output.data()), output.size() * 8);
    return out ? 0 : 2;
}
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
@pytest.mark.parametrize(("board_name", "source", "kernel"),
                         [("pynq-z2", "myproject_axis.cpp", False), ("alveo-u50", "codesign_kernel.cpp", True)])
def test_frame_wrapper_matches_testbench_data(frontend_project, tmp_path, board_name, source, kernel):
    from codesign.bitstream import write_bitstream_project
    from codesign.runtime.frames import pack_frames
    from codesign.runtime.stream import stream_format, unpack

    main(["-q", "csim", str(frontend_project), "--count", "1"])  # builds csim/myproject.o if no earlier test did
    root = tmp_path / "project"
    shutil.copytree(frontend_project, root, symlinks=True)
    write_bitstream_project(load_project(root), load_board(board_name))
    meta = load_project(root).meta
    frames = codes_to_frames(tensorfile.read(root / "hls" / "tb_data" / "inputs.bin"))[:3]
    expected = tensorfile.read(root / "hls" / "tb_data" / "expected.bin")[:3]
    harness = tmp_path / "harness.cpp"
    harness.write_text(FRAME_HARNESS)
    flags = ["-O1", "-std=c++14", "-I", str(root / "bitstream"), "-I", str(root / "hls" / "firmware"),
             "-I", str(root / "hls" / "firmware" / "ap_types")] + (["-DKERNEL"] if kernel else [])
    objects = []
    for unit in (root / "bitstream" / source, harness):
        target = tmp_path / f"{unit.stem}.o"
        subprocess.run(["g++", *flags, "-c", str(unit), "-o", str(target)], check=True, capture_output=True)
        objects.append(str(target))
    binary = tmp_path / "wrapper_tb"
    subprocess.run(["g++", *objects, str(frontend_project / "csim" / "myproject.o"), "-o", str(binary)],
                   check=True, capture_output=True)
    pack_frames(frames).astype("<u8").tofile(tmp_path / "input_words.bin")

    result = subprocess.run([str(binary), str(tmp_path / "input_words.bin"), "3", str(tmp_path / "output_words.bin")],
                            capture_output=True, text=True)
    output_format = stream_format(meta["output"])
    words = np.fromfile(tmp_path / "output_words.bin", dtype="<u8").reshape(3, output_format.words)

    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(unpack(words, output_format), expected)

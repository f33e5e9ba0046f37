"""The JPEG front-end inside an HLS project: hls4ml decoder layer, metadata and csim inputs.

The decoder is an hls4ml layer (``codesign.jpeg.hls4ml_layer``),
registered with hls4ml's extension API. ``attach_frontend`` runs after
``codesign.lower`` has set every type: its optimizer pass changes the graph
input to a stream of ``nnet::array<ap_uint<8>, 1>`` packets, one byte of a
frame each, and inserts ``nnet::jpeg_decoder`` (``hls_templates/jpeg/
nnet_jpeg_decoder.h``) between the input and the first layer. The hls4ml top
``<project>(hls::stream<input_t> &frames, hls::stream<result_t> &output)``
is then the whole accelerator: compressed bytes in, detector outputs out.

Files that a front-end project contains besides a plain project's:

    DIR/jpeg_header.bin               the tables as a JPEG header (SOI .. SOS)
    DIR/jpeg_qtables.txt              the quantization tables in cjpeg -qtables format
    DIR/hls/firmware/nnet_utils/jpeg_decoder.h, nnet_jpeg_decoder.h   the HLS decoder
    DIR/hls/firmware/parameters.h     now with the decoder tables as the layer's config struct
    DIR/hls/codesign_tb.cpp           the testbench, now fed with frames
    DIR/hls/tb_data/inputs.bin        frames of the testbench images (see frontend_tb.cpp)

``codesign.json`` gains a ``jpeg_frontend`` entry with the encoder
settings, the decoder tables and the frame format.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from codesign import tensorfile
from codesign.errors import InputError
from codesign.jpeg.frontend import (
    FRAME_HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    TESTBENCH_ITEM_MARKER,
    FrontEnd,
    build_frontend,
    codes_to_frames,
    encode_frames,
    format_qtables,
    frames_to_codes,
    settings_from_dict,
    settings_to_dict,
    split_frame,
    tables_from_dict,
    tables_to_dict,
)
from codesign.jpeg.markers import EOI
from codesign.jpeg.stream import split_jpeg
from codesign.project import META_FILE, TESTBENCH, Project, traced_layers
from codesign.templating import render_file

log = logging.getLogger(__name__)

META_KEY = "jpeg_frontend"
HEADER_FILE = "jpeg_header.bin"
QTABLES_FILE = "jpeg_qtables.txt"
# The detector's input type: an 8-bit unsigned code with value = code / 256.
PIXEL_FRAC_BITS = 8


def is_frontend_project(project: Project) -> bool:
    return META_KEY in project.meta


def check_detector_input(lowered, front_end: FrontEnd) -> None:
    """Raise ``InputError`` unless decoded pixels feed the lowered detector unchanged.

    The decoder writes 8-bit samples. They are the detector's input codes only
    when the input is NHWC with 3 channels of the front-end's image size and
    its quantizer is unsigned 8-bit with scale 2**-8 (value = pixel / 256)
    and the full code range 0..255 (not narrow, which would clip 255).
    """
    shape = tuple(lowered.input_shape)
    expected_shape = (1, front_end.height, front_end.width, 3)
    if lowered.input_layout != "NHWC" or shape != expected_shape:
        raise InputError(
            f"the JPEG front-end needs a detector input of shape {list(expected_shape)} NHWC, "
            f"got {list(shape)} {lowered.input_layout}"
        )
    quantizer = lowered.input_quantizer
    if quantizer.params.signed or quantizer.width != 8 or quantizer.frac != PIXEL_FRAC_BITS:
        raise InputError(
            f"the JPEG front-end needs the detector input type ufixed<8,0> (value = pixel / 256), "
            f"got {quantizer.precision}"
        )
    if quantizer.params.narrow:
        raise InputError(
            "the JPEG front-end needs an input quantizer with the full range 0..255, "
            "but the detector's input Quant node is narrow (0..254)"
        )


def attach_frontend(lowered, front_end: FrontEnd) -> None:
    """Check the lowered detector's input, then insert the decoder layer into its hls4ml model."""
    from codesign.jpeg.hls4ml_layer import attach_decoder

    check_detector_input(lowered, front_end)
    attach_decoder(lowered.hls_model, front_end)


def _traced_layers_cpp(hls_model) -> str:
    rows = [f'    {{"{name}", {size}}},' for name, size in traced_layers(hls_model)]
    # An empty array is not valid C++; the testbench skips a zero-size entry.
    return "\n".join(rows) if rows else '    {"", 0},'


def _write_testbench(project: Project, lowered) -> list[str]:
    """Write the frame-reading testbench; return the project paths of the decoder's sources."""
    from codesign.jpeg.hls4ml_layer import SOURCES

    project_name = project.meta["project_name"]
    testbench = render_file(
        "jpeg/frontend_tb.cpp",
        {
            "TOP": project_name,
            "OUTPUT_VALUES": int(np.prod(lowered.output_shape[1:])),
            "TRACED_LAYERS": _traced_layers_cpp(lowered.hls_model),
        },
    )
    (project.hls_dir / TESTBENCH).write_text(testbench)
    sources = [f"hls/firmware/nnet_utils/{name}" for name in SOURCES] + ["hls/firmware/parameters.h"]
    for source in sources:
        if not (project.root / source).is_file():
            raise InputError(f"hls4ml did not write {source}; the JPEG decoder layer is missing from the project")
    return sources


def distinct_quant_tables(front_end: FrontEnd) -> list[tuple[int, ...]]:
    """Return the quantization tables in order of first use: luminance, then chrominance if it differs."""
    tables: dict[int, tuple[int, ...]] = {}
    for component, table in zip(front_end.tables.frame.components, front_end.tables.frame.quant_tables):
        tables.setdefault(component.quant_table_id, table)
    return list(tables.values())


def frame_statistics(frames: list[bytes], front_end: FrontEnd) -> dict:
    """Return the mean and max frame bytes of a set of frames and the ratio to raw RGB."""
    sizes = [len(frame) for frame in frames]
    mean = float(np.mean(sizes))
    return {
        "frames": len(sizes),
        "mean_frame_bytes": round(mean, 2),
        "max_frame_bytes": int(max(sizes)),
        "raw_rgb_bytes": front_end.raw_rgb_bytes,
        "compression_ratio": round(front_end.raw_rgb_bytes / mean, 3),
    }


def write_frontend(project: Project, lowered, front_end: FrontEnd, frames: list[bytes]) -> None:
    """Add the front-end to a project that ``write_project`` wrote from the frames' decoded pixels.

    ``tb_data/expected.bin`` must already hold the reference outputs of the
    decoded pixels. This replaces ``tb_data/inputs.bin`` with the frames,
    writes the generated sources and the tables files and records the
    front-end in ``codesign.json``.
    """
    check_detector_input(lowered, front_end)
    sources = _write_testbench(project, lowered)

    header = front_end.tables.header_bytes()
    (project.root / HEADER_FILE).write_bytes(header)
    (project.root / QTABLES_FILE).write_text(
        format_qtables(distinct_quant_tables(front_end), f"JPEG front-end tables: {front_end.describe()}")
    )

    meta = project.meta
    testbench = meta.get("testbench")
    if testbench is not None:
        if testbench["images"] != len(frames):
            raise InputError(f"got {len(frames)} frames for {testbench['images']} testbench images; expected one per image")
        tensorfile.write(project.root / testbench["inputs"], frames_to_codes(frames))
        testbench["inputs_format"] = (
            f"one frame per item: the bytes {TESTBENCH_ITEM_MARKER.decode()}, the {FRAME_HEADER_BYTES}-byte "
            "big-endian payload length, the payload, zero padding"
        )

    project_name = meta["project_name"]
    meta[META_KEY] = {
        "top": project_name,
        "format": front_end.describe(),
        "settings": settings_to_dict(front_end.settings),
        "tables": tables_to_dict(front_end.tables),
        "header_file": HEADER_FILE,
        "header_sha256": hashlib.sha256(header).hexdigest(),
        "qtables_file": QTABLES_FILE,
        "frame": {"length_bytes": FRAME_HEADER_BYTES, "byte_order": "big", "max_payload_bytes": MAX_PAYLOAD_BYTES},
        "sources": sources,
        "testbench_frames": frame_statistics(frames, front_end),
    }
    (project.root / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    log.info("added the JPEG front-end to %s (%s)", project_name, front_end.describe())


def load_frontend(project: Project) -> FrontEnd | None:
    """Return the front-end recorded in a project, or None for a project without one.

    The tables in ``codesign.json``, the raw header file and a fresh encode
    with the recorded settings must all agree, because the host encoder and
    the compiled decoder would disagree otherwise. Raises ``InputError``
    when they differ.
    """
    entry = project.meta.get(META_KEY)
    if entry is None:
        return None
    tables = tables_from_dict(entry["tables"])
    settings = settings_from_dict(entry["settings"])
    header_path = project.root / entry["header_file"]
    if not header_path.is_file():
        raise InputError(f"project file missing: {header_path} (re-run codesign convert to restore it)")
    header = header_path.read_bytes()
    if hashlib.sha256(header).hexdigest() != entry["header_sha256"]:
        raise InputError(f"{header_path} differs from the header recorded in codesign.json; re-run codesign convert")
    header_tables, _ = split_jpeg(header + bytes([0xFF, EOI]), str(header_path))
    if header_tables != tables:
        raise InputError(f"{header_path} and codesign.json contain different decoder tables; re-run codesign convert")
    encoder = build_frontend(settings, tables.height, tables.width)
    if encoder.tables != tables:
        raise InputError(
            f"{project.root}: the host encoder now writes other tables for the recorded settings than the "
            "decoder was compiled with (was Pillow upgraded?); re-run codesign convert"
        )
    return encoder


def frame_codes_to_payloads(codes: np.ndarray) -> list[bytes]:
    """Return the payloads of testbench input codes written by ``frames_to_codes``."""
    return [split_frame(frame, f"testbench item {index}") for index, frame in enumerate(codes_to_frames(codes))]


def extra_units(project: Project) -> list[Path]:
    """Return the C++ translation units that the front-end adds to the csim build: none.

    The decoder is a layer of the hls4ml top, so its code is in the headers
    that ``firmware/<project>.cpp`` includes.
    """
    return []


def prepare_csim_inputs(project: Project, pixels: np.ndarray):
    """Encode val images for a front-end project's C simulation.

    Returns the testbench input codes (one frame per row), the
    ``codesign.inputs.TestInputs`` of the decoded pixels, which the
    reference runs on, and the frame statistics.
    """
    from codesign.inputs import from_pixels

    front_end = load_frontend(project)
    frames, decoded = encode_frames(front_end, pixels)
    return frames_to_codes(frames), from_pixels(project.meta, decoded), frame_statistics(frames, front_end)

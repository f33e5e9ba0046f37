"""The JPEG front-end inside an HLS project: generated files, metadata and csim inputs.

Route: a generated top level around the hls4ml design, not an hls4ml layer.
``<project>_jpeg(hls::stream<ap_uint<8> > &frames, hls::stream<result_t> &output)``
runs ``jpeg::decode_frame`` (``hls_templates/jpeg/jpeg_decoder.h``), copies
each decoded pixel into the detector's ``input_t`` packet and calls the
unchanged hls4ml top in one DATAFLOW region.

An hls4ml ``JpegDecoder`` layer (``register_layer`` with Vitis templates)
does not fit hls4ml 1.3.0's io_stream input handling. The graph input is an
``Input`` layer of fixed shape. The writers derive the top's argument, the
hls4ml testbench and the ``compile``/``predict`` bridge from that shape, so
each image would have to travel padded to the worst-case payload size.
Changing the graph's input would also change the pixel-input top that the
bitstream wrapper, the host runtime, ``detect`` and ``estimate`` read.

Files that ``write_frontend`` adds to a project folder:

    DIR/jpeg_header.bin               the tables as a JPEG header (SOI .. SOS)
    DIR/jpeg_qtables.txt              the quantization tables in cjpeg -qtables format
    DIR/hls/firmware/jpeg_decoder.h   the HLS decoder
    DIR/hls/firmware/jpeg_config_frontend_config.h   its tables
    DIR/hls/firmware/<project>_jpeg.h, .cpp          the front-end top level
    DIR/hls/codesign_tb.cpp           the testbench, now fed with frames
    DIR/hls/vendor_csim.tcl           the Vitis HLS script, now with the front-end top
    DIR/hls/tb_data/inputs.bin        frames of the testbench images (see frontend_tb.cpp)

``codesign.json`` gains a ``jpeg_frontend`` entry with the encoder
settings, the decoder tables and the frame format.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from codesign import tensorfile
from codesign.errors import InputError
from codesign.jpeg import hls
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
from codesign.project import META_FILE, TESTBENCH, VENDOR_CSIM_SCRIPT, Project, traced_layers
from codesign.templating import TEMPLATE_DIR, render_file

log = logging.getLogger(__name__)

META_KEY = "jpeg_frontend"
CONFIG_NAME = "frontend_config"
HEADER_FILE = "jpeg_header.bin"
QTABLES_FILE = "jpeg_qtables.txt"
# The detector's input type: an 8-bit unsigned code with value = code / 256.
PIXEL_FRAC_BITS = 8


def top_name(project_name: str) -> str:
    """Return the name of the front-end top-level function."""
    return f"{project_name}_jpeg"


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


def _traced_layers_cpp(hls_model) -> str:
    rows = [f'    {{"{name}", {size}}},' for name, size in traced_layers(hls_model)]
    # An empty array is not valid C++; the testbench skips a zero-size entry.
    return "\n".join(rows) if rows else '    {"", 0},'


def _write_firmware(project: Project, lowered, front_end: FrontEnd, board) -> list[str]:
    """Write the decoder, its tables and the top level into hls/firmware; return their project paths."""
    project_name = project.meta["project_name"]
    top = top_name(project_name)
    firmware = project.hls_dir / "firmware"
    config_header = hls.config_header_name(CONFIG_NAME)
    channels = lowered.input_shape[-1]
    values = {
        "TOP": top,
        "PROJECT": project_name,
        "CONFIG": CONFIG_NAME,
        "CONFIG_HEADER": config_header,
        "WIDTH": front_end.width,
        "HEIGHT": front_end.height,
        "CHANNELS": channels,
    }
    shutil.copyfile(TEMPLATE_DIR / "jpeg" / hls.KERNEL_HEADER, firmware / hls.KERNEL_HEADER)
    (firmware / config_header).write_text(hls.config_header(front_end.tables, CONFIG_NAME))
    header_values = {
        "TOP": top,
        "PROJECT": project_name,
        "CONFIG_HEADER": config_header,
        "WIDTH": front_end.width,
        "HEIGHT": front_end.height,
        "SUMMARY": front_end.describe(),
        "GUARD": f"{top.upper()}_H_",
    }
    (firmware / f"{top}.h").write_text(render_file("jpeg/frontend_top.h", header_values))
    (firmware / f"{top}.cpp").write_text(render_file("jpeg/frontend_top.cpp", values))

    testbench = render_file(
        "jpeg/frontend_tb.cpp",
        {
            "TOP": top,
            "OUTPUT_VALUES": int(np.prod(lowered.output_shape[1:])),
            "TRACED_LAYERS": _traced_layers_cpp(lowered.hls_model),
        },
    )
    (project.hls_dir / TESTBENCH).write_text(testbench)
    # NOTE: the front-end top has not been run under Vitis HLS.
    vendor_script = render_file(
        VENDOR_CSIM_SCRIPT,
        {"TOP": top, "PROJECT": project_name, "PART": board.part,
         "EXTRA_SOURCES": f'add_files firmware/{top}.cpp -cflags "-std=c++14"\n',
         "CLOCK_PERIOD_NS": round(1000.0 / board.clock_mhz, 3)},
    )
    (project.hls_dir / VENDOR_CSIM_SCRIPT).write_text(vendor_script)
    return [
        f"hls/firmware/{name}"
        for name in (hls.KERNEL_HEADER, config_header, f"{top}.h", f"{top}.cpp")
    ]


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


def write_frontend(project: Project, lowered, front_end: FrontEnd, frames: list[bytes], board) -> None:
    """Add the front-end to a project that ``write_project`` wrote from the frames' decoded pixels.

    ``tb_data/expected.bin`` must already hold the reference outputs of the
    decoded pixels. This replaces ``tb_data/inputs.bin`` with the frames,
    writes the generated sources and the tables files and records the
    front-end in ``codesign.json``.
    """
    check_detector_input(lowered, front_end)
    sources = _write_firmware(project, lowered, front_end, board)

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
        "top": top_name(project_name),
        "format": front_end.describe(),
        "settings": settings_to_dict(front_end.settings),
        "tables": tables_to_dict(front_end.tables),
        "header_file": HEADER_FILE,
        "header_sha256": hashlib.sha256(header).hexdigest(),
        "qtables_file": QTABLES_FILE,
        "frame": {"length_bytes": FRAME_HEADER_BYTES, "byte_order": "big", "max_payload_bytes": MAX_PAYLOAD_BYTES},
        "sources": sources,
        "testbench_frames": frame_statistics(frames, front_end),
        # NOTE: the bitstream wrapper and the host runtime read the detector's
        # pixel input, so bitstream/ does not build the front-end top yet.
        "bitstream_top": project_name,
    }
    (project.root / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    log.info("added the JPEG front-end top %s (%s)", top_name(project_name), front_end.describe())


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
    """Return the C++ translation units that the front-end adds to the csim build."""
    if not is_frontend_project(project):
        return []
    return [project.hls_dir / "firmware" / f"{project.meta[META_KEY]['top']}.cpp"]


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

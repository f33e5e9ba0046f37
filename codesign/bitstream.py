"""Stage 6, bitstream: vendor build scripts, a Makefile and the host runtime of a project.

``write_bitstream_project`` adds to a project folder, beside ``hls/``:

    DIR/Makefile                     csim, hls-csim, synth, cosim, bitstream and clean targets
    DIR/bitstream/hls.tcl            Vitis HLS script with the steps csim, synth, cosim and export
    DIR/bitstream/codesign_io.h      the word format between host and accelerator
    DIR/bitstream/codesign_frames.h  with the JPEG front-end: the frame format of the input
    zynq-ps shell:
    DIR/bitstream/<top>_axis.cpp     AXI4-Stream wrapper of the model for the AXI DMA
    DIR/bitstream/block_design.tcl   Vivado block design: Zynq PS, AXI DMA, accelerator
    xdma shell:
    DIR/bitstream/<top>_axis.cpp     the same AXI4-Stream wrapper
    DIR/bitstream/block_design.tcl   Vivado block design: XDMA PCIe bridge, accelerator
    xrt shell:
    DIR/bitstream/codesign_kernel.cpp  Vitis kernel with m_axi buffers around the model
    DIR/bitstream/connectivity.cfg   v++ link configuration
    DIR/host/codesign_runtime/       the host runtime (codesign/runtime plus quantize/boxes.py)
    DIR/host/accelerator.json        shell, file names and IP names of the bitstream
    DIR/host/README.md               how to run the runtime on the host

Vendor tools write into DIR/build/, and the files to copy to the board or
host land in DIR/deploy/. Every file comes from a template in
hls_templates/bitstream/.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
from pathlib import Path

from codesign.boards import Board, Shell
from codesign.errors import InputError
from codesign.project import Project
from codesign.runtime.frames import FRAME_FORMAT, FRAME_HEADER_BYTES, FRAME_SLOT_WORDS, MAX_PAYLOAD_BYTES, is_frontend
from codesign.runtime.stream import WORD_BITS, StreamFormat, stream_format
from codesign.templating import render_file

log = logging.getLogger(__name__)

BITSTREAM_DIR = "bitstream"
HOST_DIR = "host"
RUNTIME_PACKAGE = "codesign_runtime"
HARDWARE_FILE = "accelerator.json"
# Base name of the .bit, .hwh, .xsa and .xclbin files in deploy/.
BITSTREAM_NAME = "codesign"
KERNEL_NAME = "codesign_kernel"
DMA_NAME = "axi_dma_0"
IP_VENDOR = "codesign"
IP_LIBRARY = "hls"
IP_VERSION = "1.0"

RUNTIME_SOURCE = Path(__file__).resolve().parent / "runtime"
BOXES_SOURCE = Path(__file__).resolve().parent.parent / "quantize" / "boxes.py"

# get_board_parts patterns of the vendors' board files for the bundled boards.
# NOTE: taken from the board file names that AMD, TUL and Avnet publish, not
# checked against a Vivado installation here.
BOARD_PART_PATTERNS = {
    "pynq-z2": "tul.com.tw:pynq-z2:part0:*",
    "zcu102": "xilinx.com:zcu102:part0:*",
    "zcu104": "xilinx.com:zcu104:part0:*",
    "ultra96-v2": "avnet.com:ultra96v2:part0:*",
    "kv260": "xilinx.com:kv260_som:part0:*",
    "vcu118": "xilinx.com:vcu118:part0:*",
}

# With axi_clk "Maximum Data Width", the XDMA user clock runs at 250 MHz and
# the stream carries 8 (Gen1), 16 (Gen2) or 32 (Gen3) bits per lane and
# cycle, at least 64 bits. NOTE: Gen3 x16 with 512 bits (the VCU118) matches
# TaPaSCo's AU280 platform script; the other widths follow from the lane
# rates and are not checked against a Vivado installation.
XDMA_CLOCK_MHZ = 250
_XDMA_LANE_BITS = {1: 8, 2: 16, 3: 32}
_XDMA_LINK_SPEEDS = {1: "2.5 GT/s (PCIe Gen 1)", 2: "5.0 GT/s (PCIe Gen 2)", 3: "8.0 GT/s (PCIe Gen 3)"}
_PCIE_LINK = re.compile(r"pcie-gen(\d)x(\d+)")
# Platforms whose cards keep kernel buffers in HBM. NOTE: matched by name.
_HBM_PLATFORM = re.compile(r"_u(50|55[a-z]?|280)_")


def write_bitstream_project(project: Project, board: Board) -> list[Path]:
    """Write the bitstream build files, the Makefile and the host runtime for board into project.root.

    A previous bitstream/ folder and host runtime are replaced, so the same
    project can be re-targeted to another board; build/ and deploy/ are kept.
    Returns the written files. Raises InputError when the board's shell cannot
    carry this project.
    """
    root = Path(project.root)
    input_format = _input_format(project)
    output_format = stream_format(project.meta["output"])
    for stale in ("build", "deploy"):
        if (root / stale).exists():
            log.warning("%s contains outputs of an earlier bitstream build; make rebuilds those whose sources changed", root / stale)

    bitstream_dir = root / BITSTREAM_DIR
    if bitstream_dir.exists():
        shutil.rmtree(bitstream_dir)
    bitstream_dir.mkdir()

    common = _common_values(project, board)
    files = {
        "codesign_io.h": render_file("bitstream/codesign_io.h", _io_values(project, input_format, output_format)),
    }
    if is_frontend(project.meta):
        files["codesign_frames.h"] = render_file("bitstream/codesign_frames.h", _frame_values(project))
    if board.shell is Shell.XRT:
        files.update(_xrt_files(project, board, common))
    else:
        files.update(_vivado_files(project, board, common))

    written = []
    for name, text in files.items():
        path = root / name if name == "Makefile" else bitstream_dir / name
        path.write_text(text)
        written.append(path)
    written += write_host_runtime(project, board)
    log.info("wrote the %s bitstream project for %s in %s", board.shell.value, board.name, root)
    return sorted(written)


def write_host_runtime(project: Project, board: Board) -> list[Path]:
    """Copy the host runtime into DIR/host/ and describe the bitstream in host/accelerator.json."""
    root = Path(project.root)
    host = root / HOST_DIR
    package = host / RUNTIME_PACKAGE
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)

    written = []
    for source in sorted(RUNTIME_SOURCE.glob("*.py")):
        shutil.copyfile(source, package / source.name)
        written.append(package / source.name)
    # The runtime imports the decoder as .boxes, so the copy decodes exactly as codesign does.
    shutil.copyfile(BOXES_SOURCE, package / "boxes.py")
    written.append(package / "boxes.py")

    hardware = hardware_description(project, board)
    (host / HARDWARE_FILE).write_text(json.dumps(hardware, indent=2) + "\n")
    written.append(host / HARDWARE_FILE)

    device = {Shell.ZYNQ_PS: "pynq", Shell.XRT: "xrt", Shell.XDMA: "xdma"}[board.shell]
    readme = render_file(
        "bitstream/host_README.md",
        {"BOARD": board.name, "SHELL": board.shell.value, "DEVICE": device, "DEVICE_NOTES": _device_notes(board)},
    )
    (host / "README.md").write_text(readme)
    written.append(host / "README.md")
    return written


def hardware_description(project: Project, board: Board) -> dict:
    """Return the content of host/accelerator.json: what the runtime needs to find the hardware."""
    description = {
        "board": board.name,
        "shell": board.shell.value,
        "part": board.part,
        "clock_mhz": board.clock_mhz,
        "word_bits": WORD_BITS,
        "input_stream": _input_format(project).to_dict(),
        "output_stream": stream_format(project.meta["output"]).to_dict(),
    }
    if is_frontend(project.meta):
        description["input_frames"] = {
            "max_frame_bytes": FRAME_HEADER_BYTES + MAX_PAYLOAD_BYTES,
            "slot_words": FRAME_SLOT_WORDS,
            "header_sha256": project.meta["jpeg_frontend"]["header_sha256"],
        }
    if board.shell is Shell.ZYNQ_PS:
        description |= {
            "bitstream": f"deploy/{BITSTREAM_NAME}.bit",
            "hwh": f"deploy/{BITSTREAM_NAME}.hwh",
            "dma": DMA_NAME,
        }
    elif board.shell is Shell.XRT:
        description |= {
            "xclbin": f"deploy/{BITSTREAM_NAME}.xclbin",
            "kernel": KERNEL_NAME,
            "platform": board.platform,
        }
    else:
        description |= {"bitstream": f"deploy/{BITSTREAM_NAME}.bit"}
    return description


def _input_format(project: Project) -> StreamFormat:
    """Return the input word format: frame bytes in slots with the JPEG front-end, else the input codes."""
    return FRAME_FORMAT if is_frontend(project.meta) else stream_format(project.meta["input"])


def _frame_values(project: Project) -> dict[str, object]:
    return {
        "PROJECT": project.meta["project_name"],
        "WORD_BITS": WORD_BITS,
        "MAX_FRAME_BYTES": FRAME_HEADER_BYTES + MAX_PAYLOAD_BYTES,
        "FRAME_SLOT_WORDS": FRAME_SLOT_WORDS,
    }


def _common_values(project: Project, board: Board) -> dict[str, object]:
    testbench = project.meta.get("testbench") or {}
    return {
        "BOARD": board.name,
        "PART": board.part,
        "CLOCK_MHZ": f"{board.clock_mhz:g}",
        "CLOCK_PERIOD_NS": f"{board.clock_period_ns:g}",
        "PROJECT": project.meta["project_name"],
        "TB_IMAGES": int(testbench.get("images", 0)),
    }


def _io_values(project: Project, input_format: StreamFormat, output_format: StreamFormat) -> dict[str, object]:
    values: dict[str, object] = {"PROJECT": project.meta["project_name"], "WORD_BITS": WORD_BITS}
    for prefix, fmt in (("INPUT", input_format), ("OUTPUT", output_format)):
        values |= {
            f"{prefix}_VALUES": fmt.values,
            f"{prefix}_VALUE_BITS": fmt.value_bits,
            f"{prefix}_CONTAINER_BITS": fmt.container_bits,
            f"{prefix}_VALUES_PER_WORD": fmt.values_per_word,
            f"{prefix}_WORDS": fmt.words,
        }
    return values


def _hls_script(common: dict, wrapper_top: str, wrapper_source: str, export_format: str, export_flow: str,
                export_command: str) -> str:
    return render_file(
        "bitstream/hls.tcl",
        {
            **common,
            "WRAPPER_TOP": wrapper_top,
            "WRAPPER_SOURCE": wrapper_source,
            "EXPORT_FORMAT": export_format,
            "EXPORT_FLOW": export_flow,
            "EXPORT_COMMAND": export_command,
        },
    )


def _makefile(board: Board, common: dict, help_lines: list[str], phony: str, rules: str) -> str:
    return render_file(
        "bitstream/Makefile",
        {
            "BOARD": board.name,
            "SHELL": board.shell.value,
            "PROJECT": common["PROJECT"],
            "CODESIGN": f"{sys.executable} -m codesign.cli",
            "HELP_LINES": "\n".join(f"#   make {line}" for line in help_lines),
            "PHONY_TARGETS": phony,
            "BITSTREAM_RULES": rules,
        },
    )


def _vivado_files(project: Project, board: Board, common: dict) -> dict[str, str]:
    """Files of the zynq-ps and xdma shells: the AXI4-Stream wrapper and a Vivado block design."""
    top = f"{common['PROJECT']}_axis"
    wrapper_source = f"{top}.cpp"
    input_format = _input_format(project)
    output_format = stream_format(project.meta["output"])
    vlnv = f"{IP_VENDOR}:{IP_LIBRARY}:{top}:{IP_VERSION}"
    export = f"export_design -format ip_catalog -vendor {IP_VENDOR} -library {IP_LIBRARY} -version {IP_VERSION}"
    design_values = {
        "BOARD": board.name,
        "DESCRIPTION": board.description,
        "PART": board.part,
        "TOP": top,
        "BITSTREAM_NAME": BITSTREAM_NAME,
        "BOARD_PART_PATTERN": BOARD_PART_PATTERNS.get(board.name, ""),
        "ACCELERATOR_VLNV": vlnv,
        "WORD_BITS": WORD_BITS,
    }
    implementation = render_file("bitstream/implementation.tcl", {})
    if board.shell is Shell.ZYNQ_PS:
        implementation += "\n" + render_file("bitstream/zynq_handoff.tcl", {})
        design = render_file(
            "bitstream/zynq_block_design.tcl",
            {
                **design_values,
                "FAMILY": board.family.value,
                "CLOCK_MHZ": common["CLOCK_MHZ"],
                "DMA_NAME": DMA_NAME,
                "IMPLEMENTATION": implementation,
            },
        )
        summary = "Vivado bitstream with the Zynq PS and an AXI DMA: deploy/codesign.bit, .hwh, .xsa"
    else:
        implementation += "\n" + render_file("bitstream/xdma_handoff.tcl", {})
        design = render_file(
            "bitstream/xdma_block_design.tcl",
            {**design_values, **_xdma_values(board), "IMPLEMENTATION": implementation},
        )
        summary = "Vivado bitstream with the XDMA PCIe bridge: deploy/codesign.bit"

    rules = render_file("bitstream/vivado.mk", {"WRAPPER_SOURCE": wrapper_source, "BITSTREAM_NAME": BITSTREAM_NAME})
    help_lines = [
        f"ip          Vitis HLS export of the stream wrapper {top} to the IP catalog",
        f"bitstream   {summary}",
    ]
    if is_frontend(project.meta):
        wrapper = render_file(
            "bitstream/axis_frames_wrapper.cpp",
            {"PROJECT": common["PROJECT"], "TOP": top, "OUTPUT_WORDS": output_format.words,
             "FRAME_SLOT_WORDS": FRAME_SLOT_WORDS},
        )
    else:
        wrapper = render_file(
            "bitstream/axis_wrapper.cpp",
            {
                "PROJECT": common["PROJECT"],
                "TOP": top,
                "INPUT_WORDS": input_format.words,
                "OUTPUT_WORDS": output_format.words,
            },
        )
    return {
        wrapper_source: wrapper,
        "hls.tcl": _hls_script(common, top, wrapper_source, "an IP catalog entry", "vivado", export),
        "block_design.tcl": design,
        "Makefile": _makefile(board, common, help_lines, "ip", rules),
    }


def _xdma_values(board: Board) -> dict[str, object]:
    match = _PCIE_LINK.fullmatch(board.host_link.kind)
    if match is None:
        raise InputError(f"board {board.name}: shell xdma needs a PCIe host link, got {board.host_link.kind!r}")
    generation, lanes = int(match.group(1)), int(match.group(2))
    if generation not in _XDMA_LANE_BITS:
        raise InputError(
            f"board {board.name}: the XDMA design supports PCIe Gen1 to Gen3, got {board.host_link.kind!r}"
        )
    if board.clock_mhz != XDMA_CLOCK_MHZ:
        raise InputError(
            f"board {board.name}: clock_mhz must be {XDMA_CLOCK_MHZ} for shell xdma, because the accelerator "
            f"runs on the XDMA user clock; got {board.clock_mhz:g}"
        )
    stream_bits = max(WORD_BITS, lanes * _XDMA_LANE_BITS[generation])
    return {
        "LANES": lanes,
        "LINK_SPEED": _XDMA_LINK_SPEEDS[generation],
        "XDMA_STREAM_BITS": stream_bits,
        "XDMA_STREAM_BYTES": stream_bits // 8,
        "WORD_BYTES": WORD_BITS // 8,
        "XDMA_CLOCK_MHZ": XDMA_CLOCK_MHZ,
    }


def _xrt_files(project: Project, board: Board, common: dict) -> dict[str, str]:
    """Files of the xrt shell: the Vitis kernel, its link configuration and v++ rules."""
    kernel_source = f"{KERNEL_NAME}.cpp"
    input_format = _input_format(project)
    output_format = stream_format(project.meta["output"])
    memory_bank = "HBM[0]" if _HBM_PLATFORM.search(board.platform or "") else "DDR[0]"
    export = f"export_design -format xo -output [file join $root build {KERNEL_NAME}.xo]"
    rules = render_file(
        "bitstream/xrt.mk",
        {
            "PLATFORM": board.platform,
            "KERNEL": KERNEL_NAME,
            "KERNEL_SOURCE": kernel_source,
            "CLOCK_MHZ": common["CLOCK_MHZ"],
            "CLOCK_HZ": round(board.clock_mhz * 1e6),
            "PROJECT": common["PROJECT"],
            "BITSTREAM_NAME": BITSTREAM_NAME,
        },
    )
    help_lines = [
        f"kernel      v++ compile of the kernel {KERNEL_NAME} to build/{KERNEL_NAME}.xo",
        f"bitstream   v++ link for {board.platform}: deploy/{BITSTREAM_NAME}.xclbin",
    ]
    if is_frontend(project.meta):
        kernel = render_file(
            "bitstream/xrt_frames_kernel.cpp",
            {"PROJECT": common["PROJECT"], "TOP": KERNEL_NAME, "OUTPUT_WORDS": output_format.words,
             "FRAME_SLOT_WORDS": FRAME_SLOT_WORDS},
        )
    else:
        kernel = render_file(
            "bitstream/xrt_kernel.cpp",
            {
                "PROJECT": common["PROJECT"],
                "TOP": KERNEL_NAME,
                "INPUT_WORDS": input_format.words,
                "OUTPUT_WORDS": output_format.words,
            },
        )
    return {
        kernel_source: kernel,
        "connectivity.cfg": render_file(
            "bitstream/connectivity.cfg",
            {"BOARD": board.name, "PLATFORM": board.platform, "KERNEL": KERNEL_NAME, "MEMORY_BANK": memory_bank},
        ),
        "hls.tcl": _hls_script(common, KERNEL_NAME, kernel_source, "a Vitis kernel object (.xo)", "vitis", export),
        "Makefile": _makefile(board, common, help_lines, "kernel", rules),
    }


def _device_notes(board: Board) -> str:
    if board.shell is Shell.ZYNQ_PS:
        return (
            "On the board, `pynq.Overlay` loads `deploy/codesign.bit` with `deploy/codesign.hwh`, and the\n"
            f"runtime streams each image through the AXI DMA `{DMA_NAME}`."
        )
    if board.shell is Shell.XRT:
        notes = (
            "The runtime loads `deploy/codesign.xclbin` with pyxrt (source /opt/xilinx/xrt/setup.sh first)\n"
            f"and runs the kernel `{KERNEL_NAME}` once per batch of images. Pass `device_index` to pick a card."
        )
        if "aws" in (board.platform or ""):
            notes += (
                "\nOn AWS F1, first register the .xclbin as an Amazon FPGA image with the aws-fpga\n"
                "script create_vitis_afi.sh, then copy the .awsxclbin it writes over deploy/codesign.xclbin,\n"
                "the file that the runtime loads."
            )
        return notes
    return (
        "Program `deploy/codesign.bit` with the Vivado hardware manager, rescan the PCIe bus and load\n"
        "AMD's XDMA driver (dma_ip_drivers). The runtime writes each image to /dev/xdma0_h2c_0 and reads\n"
        "the result from /dev/xdma0_c2h_0; pass `xdma_device` for another card."
    )

"""The bitstream project: generated tree per board, Tcl scripts under tclsh, Makefile and stream wrappers."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from codesign import tensorfile
from codesign.bitstream import write_bitstream_project
from codesign.boards import HostLink, Shell, list_boards, load_board
from codesign.csim import CXXFLAGS
from codesign.errors import InputError
from codesign.project import load_project
from codesign.runtime.stream import pack, stream_format, unpack

needs_tclsh = pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh is not installed")

BOARD_NAMES = [board.name for board in list_boards()]
VIVADO_BOARDS = [board.name for board in list_boards() if board.shell is not Shell.XRT]

RUNTIME_FILES = {
    "host/README.md",
    "host/accelerator.json",
    "host/codesign_runtime/__init__.py",
    "host/codesign_runtime/accelerator.py",
    "host/codesign_runtime/boxes.py",
    "host/codesign_runtime/devices.py",
    "host/codesign_runtime/errors.py",
    "host/codesign_runtime/frames.py",
    "host/codesign_runtime/images.py",
    "host/codesign_runtime/stream.py",
}
SHELL_FILES = {
    Shell.ZYNQ_PS: {"bitstream/myproject_axis.cpp", "bitstream/block_design.tcl"},
    Shell.XDMA: {"bitstream/myproject_axis.cpp", "bitstream/block_design.tcl"},
    Shell.XRT: {"bitstream/codesign_kernel.cpp", "bitstream/connectivity.cfg"},
}
COMMON_FILES = {"Makefile", "bitstream/hls.tcl", "bitstream/codesign_io.h"}

# Runs a generated script in plain tclsh. Every Vivado or Vitis command is
# unknown there, so `unknown` records it and returns its own name as a
# non-empty result. The script's `exit` ends the script instead of tclsh.
STUB_HARNESS = r"""
lassign $argv script step
set ::calls {}
proc unknown {args} {
    lappend ::calls $args
    return [lindex $args 0]
}
proc get_property {name args} {
    lappend ::calls [list get_property $name {*}$args]
    if {$name eq "PROGRESS"} { return 100% }
    return 0
}
rename exit tcl_exit
proc exit {{status 0}} {
    set ::exit_status $status
    return -code return
}
set argv [list $step]
set argc [expr {$step eq "" ? 0 : 1}]
set ::exit_status 0
if {[catch {source $script} message options]} {
    puts stderr [dict get $options -errorinfo]
    tcl_exit 1
}
foreach call $::calls { puts "CALL $call" }
tcl_exit $::exit_status
"""

# Feeds packed stream words through a generated wrapper, compiled with g++,
# one image at a time (AXI4-Stream) or all at once (XRT kernel).
WRAPPER_HARNESS = r"""
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>
#include "codesign_io.h"

// The compiled model refers to the layer-trace globals that codesign_tb.cpp defines.
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
    std::vector<uint64_t> input(images * codesign::kInputWords);
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
        hls::stream<axis_word_t> input_words("input_words"), output_words("output_words");
        for (unsigned i = 0; i < codesign::kInputWords; i++) {
            axis_word_t word;
            word.data = input[image * codesign::kInputWords + i];
            word.keep = -1;
            word.strb = -1;
            word.last = i == codesign::kInputWords - 1;
            input_words.write(word);
        }
        myproject_axis(input_words, output_words);
        for (unsigned i = 0; i < codesign::kOutputWords; i++) {
            axis_word_t word = output_words.read();
            if (word.last != (i == codesign::kOutputWords - 1)) {
                std::fprintf(stderr, "TLAST is %d on output word %u of %u\n", int(word.last), i, codesign::kOutputWords);
                return 1;
            }
            output.push_back(word.data.to_uint64());
        }
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


def retarget(bundled_project: Path, tmp_path: Path, board_name: str) -> tuple[Path, list[Path]]:
    """Copy the bundled project and write its bitstream project for another board."""
    root = tmp_path / f"project-{board_name}"
    shutil.copytree(bundled_project, root, symlinks=True)
    written = write_bitstream_project(load_project(root), load_board(board_name))
    return root, written


def run_stubbed(tmp_path: Path, script: Path, step: str = "") -> subprocess.CompletedProcess:
    harness = tmp_path / "stub_harness.tcl"
    harness.write_text(STUB_HARNESS)
    return subprocess.run(["tclsh", str(harness), str(script), step], capture_output=True, text=True)


def stub_calls(result: subprocess.CompletedProcess) -> list[str]:
    return [line[len("CALL ") :] for line in result.stdout.splitlines() if line.startswith("CALL ")]


def fake_vivado_outputs(root: Path) -> None:
    """Create the files that HLS export and Vivado implementation would leave in build/."""
    (root / "build" / "wrapper_prj" / "solution1" / "impl" / "ip").mkdir(parents=True)
    runs = root / "build" / "vivado" / "codesign.runs" / "impl_1"
    runs.mkdir(parents=True)
    (runs / "codesign_wrapper.bit").write_bytes(b"bitstream")
    handoff = root / "build" / "vivado" / "codesign.gen" / "sources_1" / "bd" / "codesign" / "hw_handoff"
    handoff.mkdir(parents=True)
    (handoff / "codesign.hwh").write_text("<hwh/>")


@pytest.mark.parametrize("board_name", BOARD_NAMES)
def test_bitstream_tree_per_board(bundled_project, tmp_path, board_name):
    board = load_board(board_name)
    root, written = retarget(bundled_project, tmp_path, board_name)

    relative = {str(path.relative_to(root)) for path in written}
    on_disk = {str(path.relative_to(root)) for path in (root / "bitstream").rglob("*") if path.is_file()}
    on_disk |= {str(path.relative_to(root)) for path in (root / "host").rglob("*") if path.is_file()}
    hardware = json.loads((root / "host" / "accelerator.json").read_text())

    assert relative == COMMON_FILES | SHELL_FILES[board.shell] | RUNTIME_FILES
    assert on_disk | {"Makefile"} == relative
    assert hardware["board"] == board_name
    assert hardware["shell"] == board.shell.value
    assert f"for {board_name} ({board.shell.value} shell)" in (root / "Makefile").read_text()
    assert f"set part {board.part}" in (root / "bitstream" / "hls.tcl").read_text()
    assert (root / "host" / "codesign_runtime" / "boxes.py").read_bytes() == (
        Path(__file__).resolve().parent.parent / "quantize" / "boxes.py"
    ).read_bytes()


@needs_tclsh
@pytest.mark.parametrize("board_name", BOARD_NAMES)
def test_tcl_files_are_complete_scripts(bundled_project, tmp_path, board_name):
    root, written = retarget(bundled_project, tmp_path, board_name)
    checker = tmp_path / "complete.tcl"
    checker.write_text("set file [open [lindex $argv 0]]\nputs [info complete [read $file]]\n")

    scripts = [path for path in written if path.suffix == ".tcl"]
    assert scripts
    for script in scripts:
        result = subprocess.run(["tclsh", str(checker), str(script)], capture_output=True, text=True)
        assert result.stdout.strip() == "1", f"{script} is not a complete Tcl script: {result.stderr}"


@needs_tclsh
@pytest.mark.parametrize("step", ["csim", "synth", "cosim", "export"])
def test_hls_script_steps_run_under_stubs(bundled_project, tmp_path, step):
    root, _ = retarget(bundled_project, tmp_path, "zcu104")

    result = run_stubbed(tmp_path, root / "bitstream" / "hls.tcl", step)
    calls = stub_calls(result)

    assert result.returncode == 0, result.stderr
    assert "set_part xczu7ev-ffvc1156-2-e" in calls
    assert "create_clock -period 5 -name default" in calls
    if step == "export":
        assert "set_top myproject_axis" in calls
        assert calls[-1] == "export_design -format ip_catalog -vendor codesign -library hls -version 1.0"
    else:
        assert "set_top myproject" in calls
        tb_argv = f"{root}/hls/tb_data/inputs.bin 0 8 {root}/build/tb_outputs.bin {root}/hls/tb_data/expected.bin"
        expected_last = {"csim": f"csim_design -argv {{{tb_argv}}}", "synth": "csynth_design",
                         "cosim": f"cosim_design -argv {{{tb_argv}}}"}[step]
        assert calls[-1] == expected_last


@needs_tclsh
def test_hls_script_exports_xrt_kernel(bundled_project, tmp_path):
    root, _ = retarget(bundled_project, tmp_path, "alveo-u250")

    result = run_stubbed(tmp_path, root / "bitstream" / "hls.tcl", "export")
    calls = stub_calls(result)

    assert result.returncode == 0, result.stderr
    assert "set_top codesign_kernel" in calls
    assert "open_solution -reset -flow_target vitis solution1" in calls
    assert calls[-1] == f"export_design -format xo -output {root}/build/codesign_kernel.xo"


@needs_tclsh
def test_hls_script_rejects_unknown_step(bundled_project, tmp_path):
    root, _ = retarget(bundled_project, tmp_path, "pynq-z2")

    result = run_stubbed(tmp_path, root / "bitstream" / "hls.tcl", "implement")

    assert result.returncode == 2
    assert "STEP is one of: csim synth cosim export" in result.stderr
    assert stub_calls(result) == []


@needs_tclsh
@pytest.mark.parametrize("board_name", VIVADO_BOARDS)
def test_block_design_runs_under_stubs(bundled_project, tmp_path, board_name):
    board = load_board(board_name)
    root, _ = retarget(bundled_project, tmp_path, board_name)
    fake_vivado_outputs(root)

    result = run_stubbed(tmp_path, root / "bitstream" / "block_design.tcl")
    calls = stub_calls(result)
    hardware = json.loads((root / "host" / "accelerator.json").read_text())

    assert result.returncode == 0, result.stderr
    assert f"create_project codesign {root}/build/vivado -part {board.part} -force" in calls
    assert "create_bd_cell -type ip -vlnv codesign:hls:myproject_axis:1.0 accelerator" in calls
    assert "launch_runs impl_1 -to_step write_bitstream -jobs 4" in calls
    assert "validate_bd_design" in calls
    assert (root / hardware["bitstream"]).read_bytes() == b"bitstream"
    if board.shell is Shell.ZYNQ_PS:
        ps = {"zynq7000": "processing_system7", "zynquplus": "zynq_ultra_ps_e"}[board.family.value]
        assert f"get_ipdefs -all xilinx.com:ip:{ps}:*" in calls
        assert "get_ipdefs -all xilinx.com:ip:axi_dma:*" in calls
        assert "get_bd_intf_pins axi_dma_0/M_AXIS_MM2S" in calls
        assert "get_bd_intf_pins axi_dma_0/S_AXIS_S2MM" in calls
        assert any(call.startswith("write_hw_platform -fixed -include_bit") for call in calls)
        assert (root / hardware["hwh"]).read_text() == "<hwh/>"
    else:
        assert "get_ipdefs -all xilinx.com:ip:xdma:*" in calls
        assert "get_bd_intf_pins xdma_0/M_AXIS_H2C_0" in calls
        assert "get_bd_intf_pins xdma_0/S_AXIS_C2H_0" in calls
        assert any("lane_width X16" in call and "AXI Stream" in call for call in calls)


@needs_tclsh
def test_block_design_without_ip_fails(bundled_project, tmp_path):
    root, _ = retarget(bundled_project, tmp_path, "pynq-z2")

    result = run_stubbed(tmp_path, root / "bitstream" / "block_design.tcl")

    assert result.returncode == 1
    assert "accelerator IP not found" in result.stderr
    assert "make ip" in result.stderr
    assert stub_calls(result) == []


def test_retarget_replaces_shell_files(bundled_project, tmp_path):
    root, _ = retarget(bundled_project, tmp_path, "pynq-z2")

    written = write_bitstream_project(load_project(root), load_board("alveo-u50"))
    remaining = {path.name for path in (root / "bitstream").iterdir()}

    assert remaining == {"hls.tcl", "codesign_io.h", "codesign_kernel.cpp", "connectivity.cfg"}
    assert root / "bitstream" / "connectivity.cfg" in written
    assert "sp=codesign_kernel_1.input_words:HBM[0]" in (root / "bitstream" / "connectivity.cfg").read_text()
    assert json.loads((root / "host" / "accelerator.json").read_text())["shell"] == "xrt"


def test_xrt_memory_bank_follows_platform(bundled_project, tmp_path):
    root, _ = retarget(bundled_project, tmp_path, "alveo-u250")

    config = (root / "bitstream" / "connectivity.cfg").read_text()

    assert "sp=codesign_kernel_1.output_words:DDR[0]" in config
    assert "--platform $(PLATFORM)" in (root / "Makefile").read_text()
    assert "PLATFORM ?= xilinx_u250_gen3x16_xdma_4_1_202210_1" in (root / "Makefile").read_text()


def test_xdma_rejects_pcie_gen4(bundled_project, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(bundled_project, root, symlinks=True)
    board = dataclasses.replace(load_board("vcu118"), host_link=HostLink("pcie-gen4x8", 12000))

    with pytest.raises(InputError, match="supports PCIe Gen1 to Gen3"):
        write_bitstream_project(load_project(root), board)


def test_xdma_rejects_other_clock(bundled_project, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(bundled_project, root, symlinks=True)
    board = dataclasses.replace(load_board("vcu118"), clock_mhz=200)

    with pytest.raises(InputError, match="clock_mhz must be 250"):
        write_bitstream_project(load_project(root), board)


def _make(root: Path, target: str, path: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MAKELEVEL")}
    environment["PATH"] = path
    make = shutil.which("make")
    return subprocess.run([make, target], cwd=root, env=environment, capture_output=True, text=True)


VIVADO_MESSAGE = "vivado not found on PATH: install Vivado 2023.2 or later and source settings64.sh"
HLS_MESSAGE = "vitis_hls not found on PATH: install AMD Vitis HLS 2023.2 or later and source its settings64.sh"
VPP_MESSAGE = "v++ not found on PATH: install AMD Vitis 2023.2 or later and source its settings64.sh"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(
    ("board_name", "target", "message"),
    [
        ("pynq-z2", "bitstream", VIVADO_MESSAGE),
        ("pynq-z2", "synth", HLS_MESSAGE),
        ("pynq-z2", "cosim", HLS_MESSAGE),
        ("pynq-z2", "hls-csim", HLS_MESSAGE),
        ("pynq-z2", "ip", HLS_MESSAGE),
        ("vcu118", "bitstream", VIVADO_MESSAGE),
        ("alveo-u50", "bitstream", VPP_MESSAGE),
        ("alveo-u50", "kernel", VPP_MESSAGE),
        ("alveo-u50", "synth", HLS_MESSAGE),
    ],
)
def test_make_without_tool_exits_2(bundled_project, tmp_path, board_name, target, message):
    root, _ = retarget(bundled_project, tmp_path, board_name)
    empty = tmp_path / "empty-bin"
    empty.mkdir()

    result = _make(root, target, str(empty))

    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert not (root / "build").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_bitstream_checks_hls_after_vivado(bundled_project, tmp_path):
    root, _ = retarget(bundled_project, tmp_path, "kv260")
    tools = tmp_path / "tools"
    tools.mkdir()
    fake_vivado = tools / "vivado"
    fake_vivado.write_text("#!/bin/sh\necho vivado must not run >&2\nexit 3\n")
    fake_vivado.chmod(0o755)

    result = _make(root, "bitstream", str(tools))

    assert result.returncode == 2
    assert HLS_MESSAGE in result.stderr
    assert "must not run" not in result.stderr


def _compile_wrapper(root: Path, bundled_project: Path, tmp_path: Path, source: str, kernel: bool) -> Path:
    """Build the generated wrapper and WRAPPER_HARNESS, linked with the bundled project's compiled model."""
    harness = tmp_path / "harness.cpp"
    harness.write_text(WRAPPER_HARNESS)
    flags = [*CXXFLAGS, "-I", str(root / "bitstream"), "-I", str(root / "hls" / "firmware"),
             "-I", str(root / "hls" / "firmware" / "ap_types")] + (["-DKERNEL"] if kernel else [])
    objects = []
    for unit in (root / "bitstream" / source, harness):
        target = tmp_path / f"{unit.stem}.o"
        subprocess.run(["g++", *flags, "-c", str(unit), "-o", str(target)], check=True, capture_output=True)
        objects.append(str(target))
    # myproject.o of the bundled project reads its weights from that project's folder.
    binary = tmp_path / "wrapper_tb"
    subprocess.run(["g++", *objects, str(bundled_project / "csim" / "myproject.o"), "-o", str(binary)],
                   check=True, capture_output=True)
    return binary


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
@pytest.mark.parametrize(("board_name", "source", "kernel"),
                         [("pynq-z2", "myproject_axis.cpp", False), ("alveo-u50", "codesign_kernel.cpp", True)])
def test_stream_wrapper_matches_testbench_data(bundled_project, tmp_path, board_name, source, kernel):
    root, _ = retarget(bundled_project, tmp_path, board_name)
    meta = json.loads((root / "codesign.json").read_text())
    input_format, output_format = stream_format(meta["input"]), stream_format(meta["output"])
    codes = tensorfile.read(root / "hls" / "tb_data" / "inputs.bin")[:3]
    expected = tensorfile.read(root / "hls" / "tb_data" / "expected.bin")[:3]
    binary = _compile_wrapper(root, bundled_project, tmp_path, source, kernel)
    pack(codes, input_format).astype("<u8").tofile(tmp_path / "input_words.bin")

    result = subprocess.run([str(binary), str(tmp_path / "input_words.bin"), "3", str(tmp_path / "output_words.bin")],
                            capture_output=True, text=True)
    words = np.fromfile(tmp_path / "output_words.bin", dtype="<u8").reshape(3, output_format.words)

    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(unpack(words, output_format), expected)

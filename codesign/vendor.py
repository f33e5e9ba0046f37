"""C simulation and co-simulation under the vendor HLS tools, when they are installed.

The project's ``hls/vendor_csim.tcl`` runs the same self-checking testbench
as the g++ flow under ``csim_design`` (and ``cosim_design`` after synthesis).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from codesign.errors import InputError
from codesign.project import VENDOR_CSIM_SCRIPT, Project

VENDOR_TOOLS = ("vitis_hls", "vivado_hls")


@dataclass
class VendorRun:
    """Outcome of one vendor-tool run."""

    tool: str
    mode: str
    items: int
    passed: bool
    log_tail: str


def find_vendor_tool() -> str:
    """Return the first HLS tool on PATH; raise InputError naming them when none is there."""
    for tool in VENDOR_TOOLS:
        path = shutil.which(tool)
        if path:
            return path
    raise InputError(
        "neither vitis_hls nor vivado_hls is on PATH: install Vitis HLS (2023.2 or later) and source its "
        "settings64.sh, or run codesign csim without --vendor/--cosim for the g++ simulation"
    )


def run_vendor(project: Project, cosim: bool = False) -> VendorRun:
    """Run the testbench data under Vitis HLS csim (and cosim); pass means the testbench exited 0."""
    tool = find_vendor_tool()
    testbench = project.meta.get("testbench") or {}
    items = int(testbench.get("images", 0))
    script = project.hls_dir / VENDOR_CSIM_SCRIPT
    if items < 1 or not script.is_file():
        raise InputError(f"{project.root}: no testbench data or {VENDOR_CSIM_SCRIPT}; re-run codesign convert")
    mode = "cosim" if cosim else "csim"
    result = subprocess.run(
        [tool, "-f", VENDOR_CSIM_SCRIPT, "-tclargs", mode, str(items)],
        cwd=project.hls_dir, capture_output=True, text=True,
    )
    output = result.stdout + result.stderr
    return VendorRun(tool=tool, mode=mode, items=items, passed=result.returncode == 0, log_tail=output[-3000:])

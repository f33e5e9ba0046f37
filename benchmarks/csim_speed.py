"""Compare codesign csim with hls4ml's compile()/predict() on the same design, in one run.

Usage: python benchmarks/csim_speed.py [--images N] [--project DIR]

Both simulate the identical generated C++ of the bundled detector (or of
DIR): hls4ml through its ctypes bridge in one process, codesign through the
self-checking testbench in parallel child processes, compiled against
codesign's fast ap types model (with and without its AMD-header check) and
against AMD's headers. The script prints milliseconds per image of each and
the ratios. Build times are not part of the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40, help="val images per simulator (default 40)")
    parser.add_argument("--project", help="existing project folder (default: convert the bundled detector)")
    args = parser.parse_args()

    from codesign.boards import load_board
    from codesign.csim import csim, load_val_pixels
    from codesign.export import load_qonnx
    from codesign.flow import convert
    from codesign.lower import lower
    from codesign.project import load_project, pixels_to_model_input

    work = Path(tempfile.mkdtemp(prefix="csim_speed_"))
    project = load_project(Path(args.project)) if args.project else convert(None, work / "project")

    # hls4ml: same QONNX model, same lowering, its own compile() and predict().
    lowered = lower(load_qonnx(project.reference_model), load_board(project.meta["board"]["name"]), work / "hls4ml")
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):
        lowered.hls_model.compile()
    hls4ml_build = time.monotonic() - started

    pixels = load_val_pixels(project, args.images)
    inputs = pixels_to_model_input(pixels).transpose(0, 2, 3, 1)
    codes = lowered.input_quantizer.codes(inputs.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    hardware_input = np.ascontiguousarray(np.ldexp(codes.astype(np.float64), -lowered.input_quantizer.frac))
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):
        hls4ml_outputs = lowered.hls_model.predict(hardware_input.astype(np.float32))
    hls4ml_seconds = time.monotonic() - started

    # Builds first (not timed as simulation): the fast model and AMD's headers.
    csim(project, count=1, amd_check=1)
    runs = {
        "fast model": csim(project, count=args.images, trace_on_mismatch=False, amd_check=0),
        "fast model + 1-image AMD check (default)": csim(project, count=args.images, trace_on_mismatch=False),
        "AMD headers": csim(project, count=args.images, trace_on_mismatch=False, ap_types="amd"),
    }

    per_hls4ml = hls4ml_seconds / args.images
    print(f"images: {args.images}, cores: {os.cpu_count()}")
    print(f"hls4ml compile(): {hls4ml_build:.1f} s; predict(): {hls4ml_seconds:.2f} s = {per_hls4ml * 1000:.1f} ms/image")
    print(f"hls4ml predict outputs finite: {bool(np.isfinite(hls4ml_outputs).all())}")
    for name, report in runs.items():
        per_image = report.run_seconds / args.images
        print(f"codesign csim, {name}: C++ {report.run_seconds:.2f} s = {per_image * 1000:.1f} ms/image on "
              f"{report.jobs} processes, exact fraction {report.exact_fraction}, "
              f"speed ratio (hls4ml predict / this) {per_hls4ml / per_image:.2f}x")

if __name__ == "__main__":
    main()

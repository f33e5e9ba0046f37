"""Print the analytical estimate of the bundled detector (or of a project) per board.

For each board this prints the per-layer estimate as converted, then the reuse
factors that ``fit_reuse_factors`` picks for the Latency and the Resource
strategy, with the estimate at those reuse factors, or the reason nothing fits.

    .venv/bin/python benchmarks/estimate_report.py                  # bundled detector
    .venv/bin/python benchmarks/estimate_report.py build/demo       # a converted project
    .venv/bin/python benchmarks/estimate_report.py --boards kv260 zcu104

The numbers come from the cost model in ``codesign.estimate``, not from Vitis HLS
or Vivado. For a project that has vendor reports, the comparison is printed too.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

from codesign.boards import load_board
from codesign.errors import InputError
from codesign.estimate import (
    DesignDoesNotFitError,
    apply_reuse_factors,
    apply_strategy,
    estimate_specs,
    fit_reuse_factors,
    format_comparison,
    load_layer_specs,
    parse_vendor_reports,
)


def report_board(specs, board_name: str, project: Path | None) -> None:
    board = load_board(board_name)
    print(f"## {board.name}: {board.part}, {board.dsp_slice}, {board.clock_mhz:g} MHz\n")
    print("### As converted\n")
    converted = estimate_specs(specs, board)
    print(converted.format_table())
    if project is not None:
        reports = parse_vendor_reports(project)
        if reports:
            print(format_comparison(converted, reports, project))

    for strategy in ("latency", "resource"):
        print(f"### Fitted to 80 % of {board.name}, {strategy} strategy\n")
        try:
            chosen = fit_reuse_factors(specs, board, margin=0.8, strategy=strategy)
        except DesignDoesNotFitError as error:
            print(f"Does not fit: {error}\n")
            continue
        print("Reuse factors: " + ", ".join(f"{name}={reuse}" for name, reuse in chosen.items()) + "\n")
        fitted = estimate_specs(apply_reuse_factors(apply_strategy(specs, strategy), chosen), board)
        print(fitted.format_table())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "project", nargs="?", help="project folder written by codesign convert (default: the bundled detector)"
    )
    parser.add_argument("--boards", nargs="+", default=["pynq-z2", "zcu102"], help="board names or YAML files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message="fast_hadamard_transform package not found")
    # torch.onnx logs missing optional operators at WARNING; they do not concern the estimate.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)

    started = time.monotonic()
    project = Path(args.project) if args.project else None
    try:
        # The specs do not depend on the board; the first board only sets the conversion's part.
        specs = load_layer_specs(project, load_board(args.boards[0]))
    except InputError as error:
        print(f"estimate_report: error: {error}", file=sys.stderr)
        return 2
    source = project or "the bundled detector"
    print(f"# Estimate of {source}\n\nLayer specs loaded in {time.monotonic() - started:.1f} s.\n")
    for board_name in args.boards:
        try:
            report_board(specs, board_name, project)
        except InputError as error:
            print(f"estimate_report: error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

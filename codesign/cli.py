"""The ``codesign`` command line.

Exit status: 0 success, 1 a C simulation mismatch, 2 invalid input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

from codesign import sources_cli
from codesign.errors import InputError, SimulationError
from codesign.jpeg import frontend_cli
from codesign.output_files import check_output_file
from codesign.sweep import jpeg_cli as sweep_jpeg_cli


def _cmd_data(args) -> int:
    from quantize.dataset import generate

    dataset = generate(Path(args.root) if args.root else None)
    print(f"data set ready in {dataset.root}")
    return 0


def _cmd_train(args) -> int:
    from quantize.dataset import generate
    from quantize.detector import DetectorConfig
    from quantize.train import TrainConfig, train

    out = Path(args.out)
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; expected a checkpoint file name")
    if out.exists() and not args.force:
        raise InputError(f"checkpoint {out} exists; pass --force to overwrite it")
    if not 1 <= args.weight_bits <= 16 or not 1 <= args.act_bits <= 16:
        raise InputError("--weight-bits and --act-bits must be between 1 and 16")
    if args.epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {args.epochs}")
    out.parent.mkdir(parents=True, exist_ok=True)
    config = DetectorConfig(weight_bits=args.weight_bits, act_bits=args.act_bits)
    metrics = train(generate(), out, config, TrainConfig(epochs=args.epochs), progress=not args.quiet)
    print(f"wrote {out}: val mAP@0.5 {metrics['val_map50']:.4f} (epoch {metrics['epoch']}, "
          f"{metrics['total_seconds']:.0f} s)")
    return 0


def _cmd_convert(args) -> int:
    from codesign.flow import convert

    started = time.monotonic()
    project = convert(args.model, Path(args.out), args.board, force=args.force, tb_images=args.tb_images,
                      reuse_factor=args.reuse_factor, strategy=args.strategy,
                      jpeg_frontend=frontend_cli.settings_from_args(args),
                      source_options=sources_cli.options_from_args(args))
    widest = max(project.meta["precision"], key=lambda row: int(row["type"].split("<")[1].split(",")[0]))
    print(f"wrote {project.root} for {args.board} in {time.monotonic() - started:.1f} s")
    print(f"  input  {project.meta['input']['type']} {project.meta['input']['shape']} {project.meta['input']['layout']}")
    print(f"  output {project.meta['output']['type']} {project.meta['output']['shape']} {project.meta['output']['layout']}")
    print(f"  widest type {widest['type']} ({widest['layer']} {widest['tensor']}); see precision.md")
    for line in frontend_cli.convert_summary(project):
        print(line)
    for line in sources_cli.convert_summary(project):
        print(line)
    return 0


def _cmd_csim(args) -> int:
    from codesign.csim import DEFAULT_AMD_CHECK, csim
    from codesign.project import load_project

    if args.ap_types == "amd" and args.amd_check != DEFAULT_AMD_CHECK:
        raise InputError("--amd-check applies only to --ap-types fast; leave it out with --ap-types amd")
    if args.json:
        check_output_file(Path(args.json), args.force, "--json")
    project = load_project(Path(args.project))
    if args.vendor or args.cosim:
        from codesign.vendor import run_vendor

        run = run_vendor(project, cosim=args.cosim)
        print(run.log_tail)
        print(f"{run.tool} {run.mode} on {run.items} testbench items: {'PASS' if run.passed else 'FAIL'}")
        return 0 if run.passed else 1
    started = time.monotonic()
    report = csim(project, count=args.count, jobs=args.jobs, progress=not args.quiet, sanitize=args.sanitize,
                  all_references=args.references == "all", ap_types=args.ap_types, amd_check=args.amd_check)
    elapsed = time.monotonic() - started
    for row in report.references or []:
        if not row["available"]:
            print(f"reference {row['name']}: skipped ({row['note']})")
        elif row["identical"]:
            print(f"reference {row['name']}: identical to onnxruntime")
        else:
            print(f"reference {row['name']}: DIFFERS from onnxruntime by up to {row['max_abs_lsb']:g} LSB; "
                  "the references disagree, so the C++ comparison below is not conclusive")
    identical = {True: "yes", False: "NO", None: "n/a (not a detector)"}[report.detections_identical]
    print(f"images:               {report.images}")
    print(f"output values:        {report.values}")
    print(f"exact-match fraction: {report.exact_fraction:.6f} ({report.exact_values}/{report.values})")
    print(f"max |difference|:     {report.max_abs_lsb:g} LSB")
    if report.error_bound_lsb is not None:
        print(f"within stated bound:  {report.within_bound_values}/{report.values} outputs within "
              f"{report.error_bound_lsb:g} LSB (float-scale output rounded to the nearest value of its type)")
    if report.detection_differences:
        differences = report.detection_differences
        print(f"detections:           same classes in {differences['same_detections']}/{differences['images']} "
              f"images, max score difference {differences['max_score_difference']:.3g}, "
              f"max box difference {differences['max_box_difference_px']:.3g} px (outputs rounded, not identical)")
    else:
        print(f"detections identical: {identical}")
    if report.ap_types == "fast":
        check = (f"; AMD's headers gave identical outputs on the first {report.amd_check_images} image(s)"
                 if report.amd_check_images else "; AMD-header check skipped")
        print(f"ap types:             codesign fast model{check}")
    else:
        print("ap types:             AMD headers")
    for line in frontend_cli.csim_summary(report):
        print(line)
    print(f"time: build {report.build_seconds:.1f} s, reference {report.reference_seconds:.1f} s, "
          f"C++ {report.run_seconds:.1f} s on {report.jobs} processes, total {elapsed:.1f} s")
    for row in report.mismatches:
        print(f"  mismatch: image {row['image']} output {row['output']} got {row['got']} "
              f"expected {row['expected']:g} ({row['difference_lsb']:+g} LSB)")
    if report.trace:
        first = next((row for row in report.trace["layers"] if row["differing"]), None)
        if first:
            print(f"first diverging layer: {first['layer']} (image {report.trace['image']}): "
                  f"{first['differing']} of {first['values']} values differ, max {first['max_abs_lsb']:g} LSB")
        else:
            print(f"layer trace of image {report.trace['image']}: every traced layer matches; "
                  "the difference arises after the last traced layer")
    if args.json:
        data = report.to_dict() | {"total_seconds": round(elapsed, 2)}
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    if not report.passed:
        print("FAIL: C++ differs from the reference")
    elif report.error_bound_lsb is not None:
        print(f"PASS: C++ matches the reference within the stated bound of {report.error_bound_lsb:g} LSB")
    else:
        print("PASS: C++ matches the reference exactly")
    return 0 if report.passed else 1


def _cmd_detect(args) -> int:
    from codesign.detect import detect

    result = detect(Path(args.project), Path(args.images), Path(args.out), force=args.force, jobs=args.jobs)
    print(f"wrote {result.detections_file}: {result.detection_count} detections in {len(result.images)} images "
          f"({result.seconds:.1f} s)")
    return 0


def _cmd_estimate(args) -> int:
    from codesign.boards import load_board
    from codesign.estimate import estimate, fit_reuse_factors, format_comparison, load_layer_specs, parse_vendor_reports

    if args.json:
        check_output_file(Path(args.json), args.force, "--json")
    board = load_board(args.board)
    source = Path(args.source) if args.source else None
    specs = load_layer_specs(source, board)
    result = estimate(specs, board, strategy=args.strategy)
    print(result.format_table())
    if args.fit:
        chosen = fit_reuse_factors(specs, board, args.margin, strategy=args.strategy)
        print(f"\nreuse factors that fit {board.name} under {args.margin:.0%} of every resource:")
        for layer, factor in chosen.items():
            print(f"  {layer}: {factor}")
        result = estimate(specs, board, reuse_factors=chosen, strategy=args.strategy)
        print(result.format_table())
    frontend = frontend_cli.estimate_summary(source, board, result)
    if frontend is not None:
        print(frontend)
    if source is not None and source.is_dir():
        reports = parse_vendor_reports(source)
        if reports:
            print(format_comparison(result, reports, source))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0


def _cmd_boards(args) -> int:
    from codesign.boards import list_boards

    print(f"{'board':<12} {'part':<22} {'LUT':>9} {'FF':>9} {'DSP':>6} {'BRAM18K':>8} {'URAM':>5} {'MHz':>5}  host link")
    for board in list_boards():
        r = board.resources
        print(f"{board.name:<12} {board.part:<22} {r.lut:>9} {r.ff:>9} {r.dsp:>6} {r.bram_18k:>8} {r.uram:>5} "
              f"{board.clock_mhz:>5g}  {board.host_link.kind} {board.host_link.bandwidth_mb_s:g} MB/s")
    return 0


def _cmd_sweep(args) -> int:
    from codesign.sweep import sweep

    result = sweep(
        args.model,
        Path(args.out),
        board=args.board,
        weight_bits=args.weight_bits,
        act_bits=args.act_bits,
        layer_bits=args.layer_bits,
        strategies=args.strategy,
        reuse_factors=args.reuse_factors,
        fit=args.fit,
        margin=args.margin,
        val_images=args.val_images,
        calibration_images=args.calibration_images,
        finetune_steps=args.finetune_steps,
        verify=args.verify,
        **sweep_jpeg_cli.arguments_from_args(args),
        jobs=args.jobs,
        scheduler=args.scheduler,
        force=args.force,
        progress=not args.quiet,
    )
    reused = len(result.rows) - len(result.computed)
    noun = "point" if len(result.rows) == 1 else "points"
    print(f"wrote {result.out}: {len(result.rows)} {noun} ({len(result.computed)} computed, {reused} from an "
          f"earlier run) in {result.seconds:.0f} s; see report.md and pareto.png")
    if sweep_jpeg_cli.is_jpeg_sweep(args):
        for line in sweep_jpeg_cli.summary_lines(result, args.board):
            print(line)
        return 0
    failed = [row["key"] for row in result.rows if row.get("error")]
    if failed:
        print(f"{len(failed)} of {len(result.rows)} points have no estimate or failed verification "
              f"({', '.join(failed[:4])}{', ...' if len(failed) > 4 else ''}); see the errors in report.md")
    best = result.best_fitting()
    if best is None:
        print("no point fits the board; see report.md for how far each one is off")
    else:
        print(f"best point that fits: {best['key']}, mAP@0.5 {best['map50']:.4f}, {best['lut_percent']:.1f}% LUT, "
              f"{best['dsp_percent']:.1f}% DSP, {best['fps']:,.0f} fps")
    unverified = [row["key"] for row in result.rows if row.get("verified") is False]
    if unverified:
        print(f"C simulation differs from the reference or failed at: {', '.join(unverified)}")
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codesign", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and debug details")
    parser.add_argument("-q", "--quiet", action="store_true", help="log errors only and hide progress bars")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="generate the synthetic digit-detection data set")
    data.add_argument("--root", help="target folder (default: $CODESIGN_DATA or .data/)")
    data.set_defaults(run=_cmd_data)

    train = commands.add_parser("train", help="quantization-aware training of the detector on the CPU")
    train.add_argument("--out", required=True, help="checkpoint file to write")
    train.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    train.add_argument("--weight-bits", type=int, default=6, help="weight bit-width of every layer (default 6)")
    train.add_argument("--act-bits", type=int, default=6, help="activation bit-width of every layer (default 6)")
    train.add_argument("--force", action="store_true", help="overwrite an existing checkpoint file")
    train.set_defaults(run=_cmd_train)

    convert = commands.add_parser("convert", help="convert a quantized detector into an HLS project")
    convert.add_argument("model", nargs="?",
                         help="detector checkpoint, ONNX file (QONNX or QCDQ) or pkg.module:factory "
                              "(default: the bundled detector); see model sources below")
    convert.add_argument("--board", default="pynq-z2", help="board name or board YAML file (default pynq-z2)")
    convert.add_argument("--out", required=True, help="project folder to create")
    convert.add_argument("--force", action="store_true",
                         help="replace an existing project folder (one that contains codesign.json); other "
                              "non-empty folders and folders that contain an input file are never replaced")
    convert.add_argument("--tb-images", type=int, default=20, help="val images in the testbench data (default 20)")
    convert.add_argument("--reuse-factor", type=int, default=1, help="hls4ml reuse factor of every layer (default 1)")
    convert.add_argument("--strategy", choices=["Latency", "Resource"], default="Latency",
                         help="hls4ml strategy of every dense and convolution layer (default Latency)")
    frontend_cli.add_convert_options(convert)
    sources_cli.add_convert_options(convert)
    convert.set_defaults(run=_cmd_convert)

    sim = commands.add_parser("csim", help="C-simulate a project with g++ and compare it with the reference")
    sim.add_argument("project", help="project folder written by codesign convert")
    sim.add_argument("--count", type=int, default=20, help="val images to simulate (default 20)")
    sim.add_argument("--jobs", type=int, default=None, help="parallel simulation processes (default: all cores)")
    sim.add_argument("--json", help="write the report to this JSON file")
    sim.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    sim.add_argument("--references", choices=["onnxruntime", "all"], default="onnxruntime",
                     help="onnxruntime only (default), or also qonnx's executor and Brevitas, compared first")
    sim.add_argument("--vendor", action="store_true",
                     help="run the testbench under Vitis HLS csim_design instead of g++ (needs vitis_hls)")
    sim.add_argument("--cosim", action="store_true",
                     help="also synthesize and run RTL co-simulation under Vitis HLS (needs vitis_hls)")
    sim.add_argument("--sanitize", action="store_true",
                     help="build with AddressSanitizer and UndefinedBehaviorSanitizer (slower; AMD's headers)")
    sim.add_argument("--ap-types", choices=["fast", "amd"], default="fast",
                     help="compile against codesign's bit-accurate fast model of ap_int/ap_fixed (default, 13x to 23x "
                          "faster) or AMD's headers")
    sim.add_argument("--amd-check", type=int, default=1, metavar="N",
                     help="with --ap-types fast, also run the first N images with AMD's headers and require "
                          "identical outputs (default 1; 0 skips the check; rejected with --ap-types amd)")
    sim.set_defaults(run=_cmd_csim)

    detect = commands.add_parser("detect", help="detect objects in JPEG/PNG images with a project's C simulation")
    detect.add_argument("project", help="project folder written by codesign convert")
    detect.add_argument("images", help="image file or folder of images")
    detect.add_argument("--out", required=True, help="folder for detections.json and annotated images")
    detect.add_argument("--force", action="store_true",
                        help="replace an existing output folder of codesign detect (one that contains "
                             "detections.json); other non-empty folders are never replaced")
    detect.add_argument("--jobs", type=int, default=None, help="parallel simulation processes (default: all cores)")
    detect.set_defaults(run=_cmd_detect)

    estimate = commands.add_parser("estimate", help="estimate LUT, FF, DSP, BRAM, latency and fps without synthesis")
    estimate.add_argument("source", nargs="?", help="project folder, QONNX file or checkpoint (default: bundled)")
    estimate.add_argument("--board", default="pynq-z2", help="board name or board YAML file (default pynq-z2)")
    estimate.add_argument("--strategy", choices=["latency", "resource"], default=None,
                          help="override the hls4ml strategy of every dense and convolution layer")
    estimate.add_argument("--fit", action="store_true", help="also choose reuse factors that fit the board")
    estimate.add_argument("--margin", type=float, default=0.8, help="share of each resource --fit may use (default 0.8)")
    estimate.add_argument("--json", help="write the estimate to this JSON file")
    estimate.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    estimate.set_defaults(run=_cmd_estimate)

    sweep = commands.add_parser("sweep", help="sweep bit-widths: PTQ mAP, estimated resources, latency and fps")
    sweep.add_argument("model", nargs="?", help="QAT checkpoint or float state dict (default: the bundled detector)")
    sweep.add_argument("--out", required=True, help="sweep folder to create, or to resume")
    sweep.add_argument("--board", default="pynq-z2", help="board name or board YAML file (default pynq-z2)")
    sweep.add_argument("--weight-bits", default=None,
                       help="weight bit-widths, a range or list such as 2-8 or 4,6,8 (default 2-8)")
    sweep.add_argument("--act-bits", default=None, help="activation bit-widths, a range or list (default 2-8)")
    sweep.add_argument("--layer-bits", action="append", default=[], metavar="NAME=W:A",
                       help="fixed per-layer widths at every point, such as conv0=8:8 or head=8; repeatable")
    sweep.add_argument("--strategy", default="latency", help="hls4ml strategies to sweep: latency, resource or both")
    sweep.add_argument("--reuse-factors", default=None, help="reuse factors of every layer to sweep (default 1)")
    sweep.add_argument("--fit", action="store_true", help="let fit_reuse_factors choose per-layer reuse factors")
    sweep.add_argument("--margin", type=float, default=0.8, help="share of each resource a point may use (default 0.8)")
    sweep.add_argument("--val-images", type=int, default=500, help="val images for mAP@0.5 (default 500)")
    sweep.add_argument("--calibration-images", type=int, default=256,
                       help="train images for activation calibration (default 256)")
    sweep.add_argument("--finetune-steps", type=int, default=0, help="QAT fine-tune steps after calibration (default 0)")
    sweep.add_argument("--verify", type=int, default=0, metavar="N",
                       help="convert each bit-width combination and C-simulate N val images (default 0: off)")
    sweep.add_argument("--jobs", type=int, default=None, help="local worker processes (default: all cores)")
    sweep.add_argument("--scheduler", help="Dask scheduler address, such as tcp://127.0.0.1:8786, instead of --jobs")
    sweep.add_argument("--force", action="store_true",
                       help="replace a sweep in --out that has other arguments; a non-empty folder without the "
                            "sweep.json of codesign sweep is never replaced")
    sweep_jpeg_cli.add_sweep_options(sweep)
    sweep.set_defaults(run=_cmd_sweep)

    frontend_cli.add_frames_command(commands)

    boards = commands.add_parser("boards", help="list the bundled boards and their resources")
    boards.set_defaults(run=_cmd_boards)
    # Accept -v and -q after the command too; SUPPRESS keeps the top-level value when absent.
    for subparser in commands.choices.values():
        subparser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                               help="log progress and debug details")
        subparser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                               help="log errors only and hide progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING
    if args.verbose:
        level = logging.DEBUG
    elif args.quiet:
        level = logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # Notes from dependencies that do not concern codesign users.
        for name in ("torch.onnx", "torch.onnx._internal.exporter._registration"):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="fast_hadamard_transform package not found")
    try:
        return args.run(args)
    except InputError as error:
        print(f"codesign: error: {error}", file=sys.stderr)
        return 2
    except SimulationError as error:
        print(f"codesign: simulation failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

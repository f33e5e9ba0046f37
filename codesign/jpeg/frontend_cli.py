"""Command-line parts of the JPEG front-end: convert options, the jpeg-frames command and summaries."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codesign.errors import InputError
from codesign.jpeg.encode import SUBSAMPLINGS, JpegSettings, encode_jpeg
from codesign.jpeg.frontend import DEFAULT_QUALITY, DEFAULT_SUBSAMPLING, frontend_settings, prepare_frame, split_frame
from codesign.output_files import check_output_file


def add_convert_options(parser: argparse.ArgumentParser) -> None:
    """Add the --jpeg-* options of ``codesign convert``."""
    group = parser.add_argument_group("JPEG front-end")
    group.add_argument("--jpeg-frontend", action="store_true",
                       help="add a top level that decodes compressed images in front of the detector")
    group.add_argument("--jpeg-quality", type=int, default=None,
                       help=f"libjpeg quality 1..100 of the fixed stream format (default {DEFAULT_QUALITY})")
    group.add_argument("--jpeg-qtables", default=None, metavar="FILE",
                       help="quantization tables in cjpeg -qtables format (64 values each, luminance then "
                            "chrominance), in place of --jpeg-quality")
    group.add_argument("--jpeg-subsampling", choices=SUBSAMPLINGS, default=None,
                       help=f"chroma subsampling, or gray for one component (default {DEFAULT_SUBSAMPLING})")


def settings_from_args(args: argparse.Namespace) -> JpegSettings | None:
    """Return the front-end's encoder settings, or None without --jpeg-frontend."""
    given = [option for option, value in (("--jpeg-quality", args.jpeg_quality), ("--jpeg-qtables", args.jpeg_qtables),
                                          ("--jpeg-subsampling", args.jpeg_subsampling)) if value is not None]
    if not args.jpeg_frontend:
        if given:
            raise InputError(f"{', '.join(given)} needs --jpeg-frontend")
        return None
    return frontend_settings(args.jpeg_quality, args.jpeg_qtables, args.jpeg_subsampling)


def convert_summary(project) -> list[str]:
    """Return the lines that ``codesign convert`` prints about a project's front-end."""
    entry = project.meta.get("jpeg_frontend")
    if entry is None:
        return []
    frames = entry["testbench_frames"]
    return [
        f"  JPEG front-end: top {entry['top']}, {entry['format']}",
        f"  testbench frames: mean {frames['mean_frame_bytes']:,.0f} bytes (max {frames['max_frame_bytes']:,}), "
        f"{frames['compression_ratio']:.1f}x smaller than {frames['raw_rgb_bytes']:,} bytes of raw RGB",
        "  bitstream/ and host/ send frames: a DMA moves each frame's words only",
    ]


def csim_summary(report) -> list[str]:
    """Return the line that ``codesign csim`` prints about the frames it simulated."""
    frames = getattr(report, "jpeg_frontend", None)
    if not frames:
        return []
    return [
        f"JPEG frames in:       {frames['frames']}, mean {frames['mean_frame_bytes']:,.0f} bytes "
        f"(max {frames['max_frame_bytes']:,}), {frames['compression_ratio']:.1f}x smaller than raw RGB"
    ]


def estimate_summary(source: Path | None, board, cnn_estimate) -> str | None:
    """Return the front-end estimate and the throughput model of a front-end project, else None.

    The mean payload size and Huffman symbol count come from the project's
    testbench frames.
    """
    from codesign import tensorfile
    from codesign.estimate.jpeg import estimate_for_payloads, throughput
    from codesign.jpeg.frontend_project import frame_codes_to_payloads, load_frontend
    from codesign.project import load_project

    if source is None or not source.is_dir():
        return None
    project = load_project(source)
    front_end = load_frontend(project)
    if front_end is None:
        return None
    testbench = project.meta.get("testbench") or {}
    if "inputs" not in testbench:
        raise InputError(f"{source}: the project records no testbench frames; re-run codesign convert")
    payloads = frame_codes_to_payloads(tensorfile.read(project.root / testbench["inputs"]))
    frontend = estimate_for_payloads(front_end.tables, board, payloads)
    frame_bytes = float(np.mean([len(payload) for payload in payloads])) + 2
    model = throughput(board, frame_bytes, frontend.ii_cycles, cnn_estimate.ii_cycles)
    raw = throughput(board, front_end.raw_rgb_bytes, 1, cnn_estimate.ii_cycles)
    return "\n".join([
        f"\n## JPEG front-end ({front_end.describe()}), estimate\n",
        frontend.format_table(),
        f"With the front-end: {model.summary()}.",
        f"Raw RGB input for comparison: host link {raw.bandwidth_mb_s:g} MB/s / {front_end.raw_rgb_bytes:,} bytes "
        f"= {raw.link_fps:,.0f} fps, so {raw.fps:,.0f} fps (limited by the {raw.bottleneck}).",
    ])


def add_frames_command(commands) -> None:
    """Add ``codesign jpeg-frames``, the host-side preparation of frames for a front-end project."""
    frames = commands.add_parser(
        "jpeg-frames", help="check JPEG files against a front-end project's format and write the frames it reads")
    frames.add_argument("project", help="project folder written by codesign convert --jpeg-frontend")
    frames.add_argument("images", nargs="+", help="JPEG files, or with --encode any image of the input size")
    frames.add_argument("--out", required=True, help="file for the frames, back to back as the host link sends them")
    frames.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    frames.add_argument("--encode", action="store_true",
                        help="encode the images with the project's JPEG settings instead of checking JPEG files")
    frames.set_defaults(run=run_frames_command)


def run_frames_command(args: argparse.Namespace) -> int:
    from PIL import Image, UnidentifiedImageError

    from codesign.jpeg.frontend_project import load_frontend
    from codesign.project import load_project

    check_output_file(Path(args.out), args.force, "--out", tuple(Path(name) for name in args.images))
    project = load_project(Path(args.project))
    front_end = load_frontend(project)
    if front_end is None:
        raise InputError(f"{args.project} has no JPEG front-end; convert it with --jpeg-frontend")
    frames = []
    for name in args.images:
        path = Path(name)
        if not path.is_file():
            raise InputError(f"image file not found: {path}")
        if args.encode:
            try:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"))
            except (UnidentifiedImageError, OSError) as error:
                raise InputError(f"{path}: cannot read the image ({error})") from error
            if pixels.shape[:2] != (front_end.height, front_end.width):
                raise InputError(f"{path}: image size {pixels.shape[1]}x{pixels.shape[0]} differs from the "
                                 f"project's input size {front_end.width}x{front_end.height}")
            data = encode_jpeg(pixels, front_end.settings)
        else:
            data = path.read_bytes()
        frames.append(prepare_frame(front_end, data, str(path)))
    Path(args.out).write_bytes(b"".join(frames))
    total = sum(len(frame) for frame in frames)
    payload = sum(len(split_frame(frame)) for frame in frames)
    print(f"wrote {args.out}: {len(frames)} frames, {total:,} bytes ({payload:,} payload bytes), "
          f"{front_end.raw_rgb_bytes * len(frames) / total:.1f}x smaller than raw RGB")
    return 0

"""Command-line parts of the JPEG sweep: the ``codesign sweep --jpeg-*`` options and the printed summary."""

from __future__ import annotations

import argparse


def add_sweep_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that turn ``codesign sweep`` into a JPEG stream-format sweep."""
    group = parser.add_argument_group(
        "JPEG front-end sweep", "sweep JPEG stream formats of the checkpoint at its own bit-widths instead of bit-widths")
    group.add_argument("--jpeg-quality", default=None, metavar="Q[,Q...]",
                       help="libjpeg qualities 1..100 to sweep, such as 50,75,90")
    group.add_argument("--jpeg-tables", action="append", default=[], metavar="FILE",
                       help="quantization table file in cjpeg -qtables format (64 values each, luminance then "
                            "chrominance) to sweep; repeat or separate with commas")
    group.add_argument("--jpeg-subsampling", default=None, metavar="S[,S...]",
                       help="chroma subsamplings to sweep: 420, 422, 444 or grey (default 420)")
    group.add_argument("--finetune-epochs", type=int, default=0,
                       help="epochs of QAT fine-tuning on train images coded in each format before measuring "
                            "mAP (default 0)")
    group.add_argument("--finetune-images", type=int, default=None,
                       help="train images to fine-tune on (default all 12,000)")


def arguments_from_args(args: argparse.Namespace) -> dict:
    """Return the JPEG keyword arguments of ``codesign.sweep.sweep``."""
    return {
        "jpeg_quality": args.jpeg_quality,
        "jpeg_subsampling": args.jpeg_subsampling,
        "jpeg_tables": args.jpeg_tables,
        "finetune_epochs": args.finetune_epochs,
        "finetune_images": args.finetune_images,
    }


def is_jpeg_sweep(args: argparse.Namespace) -> bool:
    return args.jpeg_quality is not None or bool(args.jpeg_tables)


def summary_lines(result, board_name: str) -> list[str]:
    """Return the lines that ``codesign sweep`` prints after a JPEG sweep."""
    from codesign.boards import load_board
    from codesign.sweep.jpeg_report import summary_lines as report_lines

    lines = report_lines(result.rows, load_board(board_name))
    failed = [row["key"] for row in result.rows if row.get("error")]
    if failed:
        lines.append(f"{len(failed)} points failed ({', '.join(failed[:4])}); see the errors in report.md")
    return lines

"""Time the acceptance sweep: weight and act bits 2-8 (49 points) of the bundled detector on zcu102.

Each point calibrates the detector, measures mAP@0.5 on 500 val images,
exports and lowers it, and estimates it. The goal is all 49 points in at most
15 minutes on 2 cores.

    .venv/bin/python benchmarks/sweep_time.py                 # into a temporary folder
    .venv/bin/python benchmarks/sweep_time.py --out build/sweep --jobs 2

With --out the folder is kept, and a rerun resumes it, so only the missing
points are timed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from codesign.errors import InputError
from codesign.sweep import sweep

GOAL_SECONDS = 15 * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="sweep folder to keep (default: a temporary folder)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--val-images", type=int, default=500, help="val images per point (default 500)")
    parser.add_argument("--board", default="zcu102", help="board (default zcu102)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore")

    with tempfile.TemporaryDirectory(prefix="codesign-sweep-time-") as scratch:
        out = Path(args.out) if args.out else Path(scratch) / "sweep"
        started = time.monotonic()
        try:
            result = sweep(None, out, board=args.board, weight_bits="2-8", act_bits="2-8",
                           val_images=args.val_images, jobs=args.jobs)
        except InputError as error:
            print(f"sweep_time: error: {error}", file=sys.stderr)
            return 2
        wall = time.monotonic() - started

    computed = len(result.computed)
    worker_seconds = sum(row["seconds"] for row in result.rows if row["key"] in set(result.computed))
    print(f"points: {len(result.rows)} ({computed} computed) on {args.jobs or os.cpu_count()} worker processes, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"wall time: {wall:.1f} s ({wall / 60:.1f} min)")
    if computed:
        print(f"throughput: {computed / (wall / 60):.1f} points/minute; "
              f"{worker_seconds / computed:.1f} s of worker time per computed point")
    best = result.best_fitting()
    if best is not None:
        print(f"best point that fits {args.board}: {best['key']} with mAP@0.5 {best['map50']:.4f}")
    if computed == len(result.rows):
        verdict = "met" if wall <= GOAL_SECONDS else "missed"
        print(f"goal of {GOAL_SECONDS // 60} minutes for the whole sweep: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

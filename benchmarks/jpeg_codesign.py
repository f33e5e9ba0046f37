"""Measure the JPEG front-end on the bundled detector: bytes per image, mAP@0.5, ratio and cost.

For raw RGB and each stream format in QUALITY_FORMATS and CUSTOM_FORMATS,
every val image goes through the host-side path (``encode_jpeg``,
``prepare_frame``) and the bit-exact decoder model (``decode_frame``). The
detector then runs on the decoded pixels in the exact software reference:
onnxruntime over the QONNX model, which ``codesign csim`` checks against the
generated C++ value for value. Bytes per image
are frame bytes: the 2-byte length field plus the payload, as the host link
carries them. The front-end's LUTs, cycles and the throughput model come
from ``codesign.estimate.jpeg`` (estimates, no synthesis) on the aws-f1
board, a Virtex UltraScale+ VU9P like the VCU118.

    .venv/bin/python benchmarks/jpeg_codesign.py                 # 1000 val images
    .venv/bin/python benchmarks/jpeg_codesign.py --images 500 --json build/jpeg.json
    .venv/bin/python benchmarks/jpeg_codesign.py --search        # the train-split grid behind CUSTOM_FORMATS

The custom tables are libjpeg's standard luminance and chrominance tables,
each scaled to its own quality, picked by ``--search`` on the first 1000
train images so that the val images below measure them without bias.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codesign.boards import load_board
from codesign.estimate import estimate_specs, load_layer_specs
from codesign.estimate.jpeg import estimate_for_payloads, throughput
from codesign.jpeg import JpegSettings, encode_jpeg
from codesign.jpeg.frontend import build_frontend, decode_frame, prepare_frame, split_frame

# libjpeg's standard tables (ITU-T T.81 Annex K), natural order.
STANDARD_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)
STANDARD_CHROMINANCE = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *([99] * 32),
)
RAW_NAME = "raw RGB"
MAX_MAP_LOSS_POINTS = 0.3
RATIO_GOAL = 65.0
LUT_SHARE_GOAL_PERCENT = 4.0
ESTIMATE_BOARD = "aws-f1"
# Payloads per format whose Huffman symbols the decoder cycle estimate counts.
SYMBOL_SAMPLE = 100


def scaled_table(base: tuple[int, ...], quality: int) -> tuple[int, ...]:
    """Scale a base table to a libjpeg quality (jpeg_quality_scaling), clamped to 1..255 for baseline."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(min(255, max(1, (value * scale + 50) // 100)) for value in base)


def custom_settings(luma_quality: int, chroma_quality: int, subsampling: str) -> JpegSettings:
    tables = (scaled_table(STANDARD_LUMINANCE, luma_quality), scaled_table(STANDARD_CHROMINANCE, chroma_quality))
    return JpegSettings(quality=None, subsampling=subsampling, qtables=tables)


QUALITY_FORMATS = {
    "q90 4:4:4": JpegSettings(quality=90, subsampling="4:4:4"),
    "q80 4:4:4": JpegSettings(quality=80, subsampling="4:4:4"),
    "q50 4:4:4": JpegSettings(quality=50, subsampling="4:4:4"),
    "q90 4:2:0": JpegSettings(quality=90, subsampling="4:2:0"),
    "q50 4:2:0": JpegSettings(quality=50, subsampling="4:2:0"),
    "q15 4:2:0": JpegSettings(quality=15, subsampling="4:2:0"),
    "q50 gray": JpegSettings(quality=50, subsampling="gray"),
}
CUSTOM_FORMATS = {
    "L80/C60 4:4:4": custom_settings(80, 60, "4:4:4"),
    "L80/C40 4:4:4": custom_settings(80, 40, "4:4:4"),
    "L75/C45 4:4:4": custom_settings(75, 45, "4:4:4"),
    "L70/C40 4:4:4": custom_settings(70, 40, "4:4:4"),
    "L80/C90 4:2:0": custom_settings(80, 90, "4:2:0"),
}
SEARCH_LUMA = (95, 90, 85, 80, 78, 75, 72, 70)
SEARCH_CHROMA = (90, 60, 45, 40, 30, 20)
SEARCH_SUBSAMPLINGS = ("4:4:4", "4:2:0")


@dataclass
class Row:
    name: str
    mean_bytes: float
    max_bytes: int
    map50: float
    ratio: float
    payloads: list[bytes]
    settings: JpegSettings | None


class Detector:
    """The bundled detector's exact software reference and its box decoding."""

    def __init__(self) -> None:
        from codesign.export import export
        from codesign.quantize import quantize
        from codesign.reference import Reference

        quantized = quantize(None)
        self.config = quantized.config
        with tempfile.TemporaryDirectory(prefix="jpeg-benchmark-") as scratch:
            qonnx = export(quantized, Path(scratch))
            self.reference = Reference(qonnx.model)

    def map50(self, pixels: np.ndarray, coco: dict) -> float:
        from codesign.inputs import pixels_to_model_input
        from quantize.boxes import EVAL_SCORE_THRESHOLD, decode, mean_average_precision

        outputs = self.reference.run(pixels_to_model_input(pixels)).transpose(0, 2, 3, 1)
        detections = {
            image_id: decode(output, self.config.stride, self.config.anchor, EVAL_SCORE_THRESHOLD)
            for image_id, output in enumerate(outputs)
        }
        return mean_average_precision(detections, coco, self.config.num_classes)


def measure(name: str, settings: JpegSettings, pixels: np.ndarray, coco: dict, detector: Detector) -> Row:
    """Encode, frame and decode every image with the hardware's model, then score the detector."""
    front_end = build_frontend(settings, pixels.shape[1], pixels.shape[2])
    frames = [prepare_frame(front_end, encode_jpeg(image, settings), f"image {index}")
              for index, image in enumerate(pixels)]
    decoded = np.stack([decode_frame(front_end, frame) for frame in frames])
    sizes = [len(frame) for frame in frames]
    mean = float(np.mean(sizes))
    return Row(name, mean, max(sizes), detector.map50(decoded, coco), pixels[0].size / mean,
               [split_frame(frame) for frame in frames], settings)


def load_split(split: str, count: int) -> tuple[np.ndarray, dict]:
    from quantize.dataset import DatasetSpec, generate, load_images

    dataset = generate(spec=DatasetSpec(), splits=(split,))
    available = len(dataset.annotations(split)["images"])
    if count > available:
        raise SystemExit(f"--images {count} exceeds the {available} {split} images of the data set")
    return load_images(dataset, split, count)


def run_search(count: int) -> None:
    """Print the grid of custom table pairs on train images, largest ratio first."""
    pixels, coco = load_split("train", count)
    detector = Detector()
    raw = detector.map50(pixels, coco)
    print(f"# Custom table search on {count} train images (raw RGB mAP@0.5 {raw:.4f})\n")
    print("| luma quality | chroma quality | subsampling | bytes per image | ratio | mAP@0.5 | change (points) |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    rows = []
    for subsampling in SEARCH_SUBSAMPLINGS:
        for luma in SEARCH_LUMA:
            for chroma in SEARCH_CHROMA:
                row = measure("", custom_settings(luma, chroma, subsampling), pixels, coco, detector)
                rows.append((luma, chroma, subsampling, row))
                print(f"| {luma} | {chroma} | {subsampling} | {row.mean_bytes:,.0f} | {row.ratio:.1f} | "
                      f"{row.map50:.4f} | {100 * (row.map50 - raw):+.2f} |", flush=True)
    within = [entry for entry in rows if 100 * (raw - entry[3].map50) <= MAX_MAP_LOSS_POINTS]
    if within:
        luma, chroma, subsampling, row = max(within, key=lambda entry: entry[3].ratio)
        print(f"\nlargest ratio within {MAX_MAP_LOSS_POINTS} points: luma {luma}, chroma {chroma}, {subsampling}: "
              f"{row.ratio:.1f}x")


def run_benchmark(count: int, json_path: str | None) -> None:
    started = time.monotonic()
    pixels, coco = load_split("val", count)
    detector = Detector()
    board = load_board(ESTIMATE_BOARD)
    cnn = estimate_specs(load_layer_specs(None, board), board)

    raw_map = detector.map50(pixels, coco)
    raw_bytes = pixels[0].size
    rows = [Row(RAW_NAME, float(raw_bytes), raw_bytes, raw_map, 1.0, [], None)]
    for name, settings in {**QUALITY_FORMATS, **CUSTOM_FORMATS}.items():
        rows.append(measure(name, settings, pixels, coco, detector))
        print(f"measured {name}", file=sys.stderr, flush=True)

    print(f"# JPEG front-end of the bundled detector on {count} val images\n")
    print(f"Raw RGB is {raw_bytes:,} bytes per image (96 x 96 x 3). Bytes per image are frame bytes (2-byte length "
          f"plus payload). LUT, decoder cycles and fps are estimates of codesign.estimate.jpeg on {board.name} "
          f"({board.part}, {board.clock_mhz:g} MHz, host link {board.host_link.bandwidth_mb_s:g} MB/s); "
          f"the CNN alone takes {cnn.ii_cycles:,} cycles per image.\n")
    print("| format | bytes per image (max) | ratio vs raw RGB | mAP@0.5 | change (points) | front-end LUT "
          "(% of VU9P) | decoder cycles | fps (bottleneck) |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    records = []
    for row in rows:
        change = 100 * (row.map50 - raw_map)
        record = {"format": row.name, "mean_bytes": row.mean_bytes, "max_bytes": row.max_bytes,
                  "ratio": row.ratio, "map50": row.map50, "map_change_points": change}
        if row.settings is None:
            model = throughput(board, row.mean_bytes, 1, cnn.ii_cycles)
            cost = "-"
            cycles = "-"
        else:
            tables = build_frontend(row.settings, pixels.shape[1], pixels.shape[2]).tables
            frontend = estimate_for_payloads(tables, board, row.payloads[:SYMBOL_SAMPLE])
            model = throughput(board, row.mean_bytes, frontend.ii_cycles, cnn.ii_cycles)
            share = frontend.utilization["lut"]
            cost = f"{frontend.totals['lut']:,} ({share:.2f}%)"
            cycles = f"{frontend.ii_cycles:,}"
            record.update({"frontend_lut": frontend.totals["lut"], "frontend_lut_percent": share,
                           "decoder_cycles": frontend.ii_cycles})
        record.update({"fps": model.fps, "bottleneck": model.bottleneck})
        records.append(record)
        print(f"| {row.name} | {row.mean_bytes:,.0f} ({row.max_bytes:,}) | {row.ratio:.1f}x | {row.map50:.4f} | "
              f"{change:+.2f} | {cost} | {cycles} | {model.fps:,.0f} ({model.bottleneck}) |")

    compressed = [record for record in records if "decoder_cycles" in record]
    within = [record for record in compressed if -record["map_change_points"] <= MAX_MAP_LOSS_POINTS]
    print()
    if within:
        best = max(within, key=lambda record: record["ratio"])
        verdict = "meets" if best["ratio"] >= RATIO_GOAL else "misses"
        print(f"Best ratio within {MAX_MAP_LOSS_POINTS} points of mAP loss: {best['ratio']:.1f}x ({best['format']}, "
              f"{best['map_change_points']:+.2f} points); this {verdict} the {RATIO_GOAL:g}x goal.")
    else:
        print(f"No format stays within {MAX_MAP_LOSS_POINTS} points of mAP loss.")
    largest_share = max(record["frontend_lut_percent"] for record in compressed)
    verdict = "meets" if largest_share <= LUT_SHARE_GOAL_PERCENT else "misses"
    print(f"Front-end LUTs: at most {largest_share:.2f}% of the VU9P (estimate); this {verdict} the "
          f"{LUT_SHARE_GOAL_PERCENT:g}% goal.")
    print(f"\n{time.monotonic() - started:.0f} s")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps({"images": count, "raw_map50": raw_map, "rows": records}, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="val images to measure (default 1000, all)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--search", action="store_true",
                        help="run the custom table grid on train images instead of the benchmark")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")
    if args.search:
        run_search(args.images)
    else:
        run_benchmark(args.images, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

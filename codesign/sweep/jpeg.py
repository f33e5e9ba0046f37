"""JPEG stream-format sweep: bytes per image, mAP@0.5, front-end cost and fps of each customized format.

``codesign sweep --jpeg-quality 50,75,90 --jpeg-subsampling 420,444,grey
--jpeg-tables FILE`` measures the detector checkpoint, at its own bit-widths,
behind the JPEG front-end of ``codesign convert --jpeg-frontend``. The grid is
(quality or quantization table file) x subsampling, plus one raw RGB point.
For each format the sweep

- encodes the val images with the host-side path (``encode_jpeg``,
  ``prepare_frame``) and decodes the frames with the bit-exact decoder
  model (``decode_frame``);
- reports frame bytes per image (the 2-byte length field plus the payload,
  as the host link carries them) and the ratio to raw RGB;
- measures mAP@0.5 of the Brevitas model on the decoded images, optionally
  after ``--finetune-epochs`` epochs of QAT on train images that went
  through the same format (decoded by Pillow, whose output the decoder
  model equals pixel for pixel);
- estimates the front-end's resources and cycles (``codesign.estimate.jpeg``)
  and the throughput model fps = min(host link bandwidth / bytes per image,
  decoder rate, CNN rate) with the board's ``host_link.bandwidth_mb_s``.

Points run through ``codesign.sweep.runner``, so results are written per
point and a rerun with the same arguments resumes.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import logging
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codesign.errors import InputError
from codesign.jpeg.encode import JpegSettings

log = logging.getLogger(__name__)

RAW_KEY = "raw-rgb"
# Accepted spellings of --jpeg-subsampling values, and the short form used in point keys.
SUBSAMPLING_ALIASES = {
    "420": "4:2:0", "4:2:0": "4:2:0", "422": "4:2:2", "4:2:2": "4:2:2", "444": "4:4:4", "4:4:4": "4:4:4",
    "grey": "gray", "gray": "gray",
}
SUBSAMPLING_KEYS = {"4:2:0": "420", "4:2:2": "422", "4:4:4": "444", "gray": "grey"}
DEFAULT_SUBSAMPLINGS = "420"
# Largest mAP@0.5 loss, in points, at which the report names the most compressed format.
MAX_MAP_LOSS_POINTS = 0.3
# Payloads per format whose Huffman symbols the decoder cycle estimate counts.
SYMBOL_SAMPLE = 100
FINETUNE_LEARNING_RATE = 3e-4
_TABLE_NAME = re.compile(r"[^A-Za-z0-9_]+")


@dataclass(frozen=True)
class QuantTables:
    """Quantization tables read from one ``--jpeg-tables`` file."""

    name: str
    tables: tuple[tuple[int, ...], ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256(repr(self.tables).encode()).hexdigest()


@dataclass(frozen=True)
class JpegPoint:
    """One stream format, or raw RGB when ``subsampling`` is None."""

    subsampling: str | None
    quality: int | None = None
    tables: QuantTables | None = None
    finetune: bool = False

    @property
    def raw(self) -> bool:
        return self.subsampling is None

    @property
    def key(self) -> str:
        """File-name-safe key such as ``q50-420``, ``t-mytables-444`` or ``raw-rgb``."""
        if self.raw:
            return RAW_KEY
        label = f"q{self.quality}" if self.tables is None else f"t-{self.tables.name}"
        return f"{label}-{SUBSAMPLING_KEYS[self.subsampling]}"

    @property
    def model_key(self) -> str:
        """Points with the same model key share one task: every point without fine-tuning shares one."""
        return self.key if self.finetune and not self.raw else "checkpoint"

    def settings(self) -> JpegSettings:
        if self.tables is not None:
            return JpegSettings(quality=None, subsampling=self.subsampling, qtables=self.tables.tables)
        return JpegSettings(quality=self.quality, subsampling=self.subsampling)


@dataclass(frozen=True)
class JpegAxes:
    """The JPEG grid and the settings that every point of a JPEG sweep shares."""

    qualities: tuple[int, ...]
    tables: tuple[QuantTables, ...]
    subsamplings: tuple[str, ...]
    strategy: str = "latency"
    reuse_factor: int | None = 1
    finetune_epochs: int = 0
    finetune_images: int | None = None

    def points(self) -> list[JpegPoint]:
        """Return raw RGB, then every (quality, then table file) x subsampling point."""
        finetune = self.finetune_epochs > 0
        points = [JpegPoint(None)]
        for quality in self.qualities:
            points += [JpegPoint(subsampling, quality=quality, finetune=finetune) for subsampling in self.subsamplings]
        for tables in self.tables:
            points += [JpegPoint(subsampling, tables=tables, finetune=finetune) for subsampling in self.subsamplings]
        return points

    def settings(self) -> dict:
        """Return the settings that point values depend on but point keys do not show."""
        return {
            "jpeg_tables_sha256": {tables.name: tables.digest for tables in self.tables},
            "jpeg_strategy": self.strategy,
            "jpeg_reuse_factor": self.reuse_factor,
            "finetune_epochs": self.finetune_epochs,
            "finetune_images": self.finetune_images,
            "finetune_learning_rate": FINETUNE_LEARNING_RATE,
        }

    def arguments(self) -> dict:
        return {
            "jpeg_quality": list(self.qualities),
            "jpeg_tables": [tables.name for tables in self.tables],
            "jpeg_subsampling": list(self.subsamplings),
        }


def parse_qualities(text: str) -> tuple[int, ...]:
    """Parse ``--jpeg-quality 50,75,90`` into distinct libjpeg qualities 1..100 in the given order."""
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= 100:
            raise InputError(f"--jpeg-quality {text!r}: {part!r} is not a quality in 1..100")
        if int(part) not in values:
            values.append(int(part))
    return tuple(values)


def parse_subsamplings(text: str) -> tuple[str, ...]:
    """Parse ``--jpeg-subsampling 420,444,grey`` into distinct subsampling names of ``JpegSettings``."""
    values: list[str] = []
    for part in str(text).split(","):
        name = SUBSAMPLING_ALIASES.get(part.strip().lower())
        if name is None:
            raise InputError(
                f"--jpeg-subsampling {text!r}: unknown subsampling {part.strip()!r}; expected 420, 422, 444 or grey"
            )
        if name not in values:
            values.append(name)
    return tuple(values)


def read_table_files(items: list[str] | tuple[str, ...]) -> tuple[QuantTables, ...]:
    """Read ``--jpeg-tables`` files (cjpeg -qtables format; comma-separated or repeated)."""
    from codesign.jpeg.frontend import read_qtables

    tables: list[QuantTables] = []
    for item in items:
        for part in str(item).split(","):
            path = Path(part.strip())
            name = _TABLE_NAME.sub("_", path.stem).strip("_") or "tables"
            if any(existing.name == name for existing in tables):
                raise InputError(f"--jpeg-tables: two files are named {name!r}; give each table file its own name")
            tables.append(QuantTables(name=name, tables=read_qtables(path)))
    return tuple(tables)


def check_formats(axes: JpegAxes, image_size: int) -> None:
    """Raise InputError for a point that the encoder or the HLS decoder rejects, before any point runs."""
    from codesign.jpeg.frontend import build_frontend

    for point in axes.points():
        if point.raw:
            continue
        try:
            build_frontend(point.settings(), image_size, image_size)
        except InputError as error:
            raise InputError(f"JPEG format {point.key}: {error}") from error


# ---------------------------------------------------------------------------
# Worker side


def compute_jpeg_points(task) -> list[dict]:
    """Return one result row per point of a JPEG ``ModelTask``, in the order of ``task.points``."""
    from quantize.train import evaluate_map

    from codesign.sweep.worker import _val_data

    started = time.monotonic()
    axes: JpegAxes = task.settings.jpeg
    module = _load_module(task.weights_digest, task.weights)
    cnn = _cnn_estimate(task.weights_digest, task.weights, task.board, axes.strategy, axes.reuse_factor,
                        task.settings.margin)
    val_pixels, val_coco = _val_data(task.settings.val_images)
    shared_seconds = time.monotonic() - started

    rows = []
    for point in task.points:
        point_started = time.monotonic()
        if point.raw:
            row = _raw_row(point, evaluate_map(module, val_pixels, val_coco), val_pixels, task.board, cnn)
        else:
            row = _format_row(point, module, val_pixels, val_coco, task, cnn)
        row["seconds"] = round(shared_seconds / len(task.points) + time.monotonic() - point_started, 3)
        rows.append(row)
    return rows


def _raw_row(point: JpegPoint, map50: float, val_pixels: np.ndarray, board, cnn: dict) -> dict:
    from codesign.estimate.jpeg import throughput

    raw_bytes = int(val_pixels[0].size)
    model = throughput(board, raw_bytes, 1, cnn["ii_cycles"])
    row = _empty_row(point)
    row.update({
        "format": f"raw RGB, {val_pixels.shape[2]}x{val_pixels.shape[1]}x3",
        "bytes_per_image": float(raw_bytes), "max_bytes": raw_bytes, "ratio": 1.0, "map50": map50,
        "cnn_cycles": cnn["ii_cycles"], "cnn_lut_percent": cnn["lut_percent"], "link_fps": model.link_fps,
        "decoder_fps": None, "cnn_fps": model.cnn_fps, "fps": model.fps, "bottleneck": model.bottleneck,
    })
    return row


def _format_row(point: JpegPoint, module, val_pixels: np.ndarray, val_coco: dict, task, cnn: dict) -> dict:
    from quantize.train import evaluate_map

    from codesign.estimate.jpeg import estimate_for_payloads, throughput
    from codesign.jpeg.frontend import build_frontend, encode_frames, split_frame

    axes: JpegAxes = task.settings.jpeg
    front_end = build_frontend(point.settings(), val_pixels.shape[1], val_pixels.shape[2])
    frames, decoded = encode_frames(front_end, val_pixels)
    sizes = [len(frame) for frame in frames]
    mean_bytes = float(np.mean(sizes))
    map_before = evaluate_map(module, decoded, val_coco)

    row = _empty_row(point)
    row.update({
        "format": front_end.describe(), "bytes_per_image": mean_bytes, "max_bytes": int(max(sizes)),
        "ratio": val_pixels[0].size / mean_bytes, "map50": map_before,
    })
    if point.finetune:
        tuned, losses = _fine_tune(module, point, axes)
        row["map50_before_finetune"] = map_before
        row["map50"] = evaluate_map(tuned, decoded, val_coco)
        row["finetune_epochs"] = axes.finetune_epochs
        row["finetune_loss"] = losses[-1]
        row["checkpoint"] = _save_tuned(tuned, point, task, row["map50"])

    payloads = [split_frame(frame) for frame in frames[:SYMBOL_SAMPLE]]
    frontend = estimate_for_payloads(front_end.tables, task.board, payloads)
    model = throughput(task.board, mean_bytes, frontend.ii_cycles, cnn["ii_cycles"])
    for key, value in frontend.totals.items():
        row[f"frontend_{key}"] = value
        row[f"frontend_{key}_percent"] = frontend.utilization[key]
    row.update({
        "decoder_cycles": frontend.ii_cycles, "cnn_cycles": cnn["ii_cycles"], "cnn_lut_percent": cnn["lut_percent"],
        "link_fps": model.link_fps, "decoder_fps": model.decoder_fps, "cnn_fps": model.cnn_fps, "fps": model.fps,
        "bottleneck": model.bottleneck,
    })
    return row


def _empty_row(point: JpegPoint) -> dict:
    from codesign.sweep.jpeg_report import JPEG_COLUMNS

    row = {key: None for key in JPEG_COLUMNS}
    row.update({
        "key": point.key, "quality": point.quality, "tables": point.tables.name if point.tables else None,
        "subsampling": point.subsampling or "raw", "finetune_epochs": 0,
    })
    return row


def _fine_tune(module, point: JpegPoint, axes: JpegAxes):
    """Return a copy of the module fine-tuned on train images in the point's format, and the epoch losses."""
    from quantize.train import fine_tune

    pixels, coco = _finetune_data(point.settings(), axes.finetune_images)
    tuned = copy.deepcopy(module)
    losses = fine_tune(tuned, pixels, coco, axes.finetune_epochs, learning_rate=FINETUNE_LEARNING_RATE)
    return tuned, losses


def _save_tuned(module, point: JpegPoint, task, map50: float) -> str | None:
    """Save the fine-tuned detector as points/<key>/model.pt; return its path relative to the sweep folder."""
    from quantize.detector import save_checkpoint

    if task.out_dir is None:
        return None
    relative = Path("points") / point.key / "model.pt"
    path = Path(task.out_dir) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = {"val_map50": map50, "val_images": task.settings.val_images, "jpeg_format": point.key,
               "finetune_epochs": task.settings.jpeg.finetune_epochs}
    save_checkpoint(module, path, metrics)
    return str(relative)


@functools.lru_cache(maxsize=1)
def _load_module(digest: str, checkpoint: bytes):
    """Load the checkpoint that a task carries as bytes, so that a Dask worker needs no shared file system."""
    from codesign.quantize import quantize

    with tempfile.TemporaryDirectory(prefix="codesign-jpeg-sweep-") as folder:
        path = Path(folder) / "model.pt"
        path.write_bytes(checkpoint)
        module = quantize(path).module
    module.eval()
    return module


# Per-process cache of CNN estimates, because exporting and lowering the detector takes seconds.
_CNN_ESTIMATES: dict = {}


def _cnn_estimate(digest: str, checkpoint: bytes, board, strategy: str, reuse_factor: int | None,
                  margin: float) -> dict:
    """Estimate the detector alone on the board; return its II, LUT share and whether it fits."""
    from codesign.sweep.grid import Point
    from codesign.sweep.worker import _estimate_row, _layer_specs

    cache_key = (digest, board.name, board.source and str(board.source), strategy, reuse_factor, margin)
    if cache_key not in _CNN_ESTIMATES:
        module = _load_module(digest, checkpoint)
        specs = _layer_specs(module, board)
        point = Point(module.config.weight_bits, module.config.act_bits, strategy, reuse_factor)
        estimate = _estimate_row(specs, point, board, margin)
        _CNN_ESTIMATES[cache_key] = {
            "ii_cycles": estimate["ii_cycles"], "lut_percent": estimate["lut_percent"], "fits": estimate["fits"],
        }
    return _CNN_ESTIMATES[cache_key]


@functools.lru_cache(maxsize=1)
def _finetune_data(settings: JpegSettings, count: int | None):
    """Return the first count train images of the detector's training set, JPEG-coded in ``settings``."""
    from PIL import Image
    from quantize.dataset import DatasetSpec, generate, load_images

    from codesign.jpeg.encode import encode_jpeg

    dataset = generate(spec=DatasetSpec(), splits=("train",))
    pixels, coco = load_images(dataset, "train", count)
    decoded = np.empty_like(pixels)
    for index, image in enumerate(pixels):
        with Image.open(io.BytesIO(encode_jpeg(image, settings))) as coded:
            decoded[index] = np.asarray(coded.convert("RGB"))
    return decoded, coco

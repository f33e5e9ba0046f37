"""Compute the sweep points that share one set of bit-widths, in a worker process or on a Dask worker.

One ``ModelTask`` builds the detector at its bit-widths, calibrates it from the
checkpoint's weights and measures mAP@0.5 with the Brevitas model. It exports
and lowers the model once, without compiling C++, and estimates every strategy
and reuse factor of its points from the same layer specs. Each worker process
loads the val and train images and the checkpoint's weights once.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import select
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from codesign.boards import Board
from codesign.errors import CodesignError, SimulationError
from codesign.sweep.grid import Point, format_layer_bits

log = logging.getLogger(__name__)

RESOURCES = ("lut", "ff", "dsp", "bram_18k", "uram")
# Loggers of dependencies that write notes to stderr during export, which would break the progress bar.
_NOISY_LOGGERS = ("torch.onnx", "torch.onnx._internal.exporter._registration")
# Brevitas warns at import when an optional package is missing. The fork server imports this module
# before Brevitas, so the filter also covers the worker processes it forks.
warnings.filterwarnings("ignore", message="fast_hadamard_transform package not found")


@dataclass(frozen=True)
class TaskSettings:
    """The sweep arguments that a worker needs besides the points themselves."""

    val_images: int
    calibration_images: int
    finetune_steps: int
    verify: int
    margin: float
    # codesign.sweep.jpeg.JpegAxes of a JPEG sweep, whose tasks carry the checkpoint file's bytes as weights.
    jpeg: object | None = None


@dataclass(frozen=True)
class ModelTask:
    """Points with the same bit-widths, computed together from one quantized model.

    ``weights`` is the checkpoint's ``FloatWeights`` serialized with
    ``torch.save``, so the task pickles without torch's shared-memory tensors.
    ``out_dir`` is the sweep folder, where ``--verify`` writes its project.
    """

    weights: bytes
    weights_digest: str
    board: Board
    settings: TaskSettings
    points: tuple[Point, ...]
    out_dir: str | None = None


def init_worker(sweep_pid: int | None = None) -> None:
    """Configure a worker process: one torch thread, no dependency warnings on stderr, and exit with the sweep.

    ``sweep_pid`` is the process that runs the sweep. A worker keeps both ends
    of its task queue open, so it would wait for tasks forever after that
    process is killed. A daemon thread ends the worker as soon as the sweep process exits.
    """
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if sweep_pid is not None:
        threading.Thread(target=_exit_with_process, args=(sweep_pid,), daemon=True).start()


def _exit_with_process(pid: int) -> None:
    """Block until process pid exits, then end this process at once."""
    try:
        # A pidfd becomes readable when the process exits, even before its parent reaps it (Linux 5.3+).
        descriptor = os.pidfd_open(pid)
    except (AttributeError, OSError):
        descriptor = None
    if descriptor is not None:
        select.select([descriptor], [], [])
    else:
        while _process_exists(pid):
            time.sleep(1.0)
    os._exit(1)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # The process exists but belongs to another user.
        pass
    return True


def compute_points(task: ModelTask) -> list[dict]:
    """Return one result row per point of the task, in the order of ``task.points``.

    Runs with one torch thread and restores the previous count afterwards.
    A point whose model cannot be exported, lowered or estimated gets a row
    with its ``error`` set instead of raising, because it would fail the same
    way on every rerun.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _quiet():
            if task.settings.jpeg is not None:
                from codesign.sweep.jpeg import compute_jpeg_points

                return compute_jpeg_points(task)
            return _compute_points(task)
    finally:
        torch.set_num_threads(threads)


def _compute_points(task: ModelTask) -> list[dict]:
    from quantize.ptq import PtqSettings, post_training_quantize, with_bits
    from quantize.train import evaluate_map

    started = time.monotonic()
    first = task.points[0]
    weights = _load_weights(task.weights_digest, task.weights)
    config = with_bits(
        weights.config, first.weight_bits, first.act_bits, dict(first.layer_weight_bits), dict(first.layer_act_bits)
    )
    settings = task.settings
    ptq = PtqSettings(calibration_images=settings.calibration_images, finetune_steps=settings.finetune_steps)
    train_count = settings.calibration_images if settings.finetune_steps == 0 else None
    train_pixels, train_coco = _train_data(train_count)
    model = post_training_quantize(weights, config, train_pixels, ptq, train_coco)
    val_pixels, val_coco = _val_data(settings.val_images)
    map50 = evaluate_map(model, val_pixels, val_coco)

    specs, error = None, None
    try:
        specs = _layer_specs(model, task.board)
    except CodesignError as failure:
        error = f"export or lowering failed: {failure}"
        log.warning("%s: %s", first.model_key, error)
    shared_seconds = time.monotonic() - started

    verified, project = None, None
    if settings.verify and error is None:
        verify_started = time.monotonic()
        verified, project, verify_error = _verify(model, map50, task)
        error = verify_error
        shared_seconds += time.monotonic() - verify_started

    rows = []
    for point in task.points:
        point_started = time.monotonic()
        row = _base_row(point, map50)
        if specs is not None:
            row.update(_estimate_row(specs, point, task.board, settings.margin))
        row["verified"] = verified
        row["project"] = project
        row["error"] = error
        row["seconds"] = round(shared_seconds / len(task.points) + time.monotonic() - point_started, 3)
        rows.append(row)
    return rows


def _base_row(point: Point, map50: float) -> dict:
    row = {
        "key": point.key,
        "weight_bits": point.weight_bits,
        "act_bits": point.act_bits,
        "layer_bits": format_layer_bits(dict(point.layer_weight_bits), dict(point.layer_act_bits)),
        "strategy": point.strategy,
        "reuse": point.reuse_factor,
        "map50": map50,
    }
    for key in RESOURCES:
        row[key] = None
        row[f"{key}_percent"] = None
    row.update({"latency_cycles": None, "ii_cycles": None, "fps": None, "fits": False, "note": None})
    return row


def _layer_specs(model, board: Board) -> list:
    """Export the model to QONNX and lower it with hls4ml in a scratch folder; return its layer specs."""
    from codesign.estimate.spec import specs_from_hls_model
    from codesign.export import export
    from codesign.lower import lower
    from codesign.quantize import QuantizedModel

    quantized = QuantizedModel(module=model, config=model.config, source="sweep")
    with tempfile.TemporaryDirectory(prefix="codesign-sweep-") as scratch:
        qonnx = export(quantized, Path(scratch))
        lowered = lower(qonnx, board, Path(scratch) / "hls")
        return specs_from_hls_model(lowered.hls_model)


def _estimate_row(specs: list, point: Point, board: Board, margin: float) -> dict:
    """Estimate one point: a uniform reuse factor, or the factors that ``fit_reuse_factors`` chooses."""
    from codesign.estimate import (
        DesignDoesNotFitError,
        apply_reuse_factors,
        apply_strategy,
        estimate_specs,
        fit_reuse_factors,
    )
    from codesign.estimate.spec import MATMUL_KINDS

    specs = apply_strategy(specs, point.strategy)
    note = None
    if point.reuse_factor is None:
        try:
            reuse = fit_reuse_factors(specs, board, margin, strategy=point.strategy)
        except DesignDoesNotFitError as failure:
            # The row keeps the estimate at reuse factor 1, so it still shows how far the design is off.
            reuse = None
            note = f"no reuse factors fit: {failure}"
        factors = reuse or {spec.name: 1 for spec in specs if spec.kind in MATMUL_KINDS}
    else:
        reuse = point.reuse_factor
        factors = {spec.name: reuse for spec in specs if spec.kind in MATMUL_KINDS}
    result = estimate_specs(apply_reuse_factors(specs, factors), board)

    row: dict = {"reuse": reuse}
    for key in RESOURCES:
        row[key] = result.totals[key]
        row[f"{key}_percent"] = result.utilization[key]
    row.update(
        {
            "latency_cycles": result.latency_cycles,
            "ii_cycles": result.ii_cycles,
            "fps": result.fps,
            "fits": result.fits(margin),
            "note": note,
        }
    )
    return row


def _verify(model, map50: float, task: ModelTask) -> tuple[bool | None, str | None, str | None]:
    """Convert the model into points/<key>/project and C-simulate ``verify`` val images.

    Returns (passed, project path relative to the sweep folder, error message).
    The project uses the Latency strategy and the first point's reuse factor,
    because neither changes the values that the C++ computes.
    NOTE: a Dask worker writes the project under the client's sweep path on its
    own file system, so --verify with --scheduler needs a shared file system.
    """
    from codesign.csim import csim
    from codesign.flow import convert
    from quantize.detector import save_checkpoint

    if task.out_dir is None:
        return None, None, None
    first = task.points[0]
    folder = Path(task.out_dir) / "points" / first.key
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / "model.pt"
    save_checkpoint(model, checkpoint, {"val_map50": map50, "val_images": task.settings.val_images})
    try:
        project = convert(
            str(checkpoint),
            folder / "project",
            str(task.board.source),
            force=True,
            tb_images=task.settings.verify,
            reuse_factor=first.reuse_factor or 1,
        )
        report = csim(project, count=task.settings.verify, jobs=1)
    except (SimulationError, CodesignError) as failure:
        log.warning("%s: verification failed: %s", first.key, failure)
        return False, str(Path("points") / first.key / "project"), f"verification failed: {failure}"
    return bool(report.passed), str(Path("points") / first.key / "project"), None


# Per-process caches: a worker computes many points from the same checkpoint and images.
_WEIGHTS_CACHE: dict = {}


def _load_weights(digest: str, blob: bytes):
    if digest not in _WEIGHTS_CACHE:
        _WEIGHTS_CACHE.clear()
        _WEIGHTS_CACHE[digest] = deserialize_weights(blob)
    return _WEIGHTS_CACHE[digest]


def serialize_weights(weights) -> bytes:
    """Return ``FloatWeights`` as ``torch.save`` bytes, the form a ``ModelTask`` carries."""
    import torch

    buffer = io.BytesIO()
    torch.save(
        {
            "config": weights.config.to_dict(),
            "state": weights.state,
            "source": weights.source,
            "kind": weights.kind,
            "act_thresholds": weights.act_thresholds,
            "metrics": weights.metrics,
        },
        buffer,
    )
    return buffer.getvalue()


def deserialize_weights(blob: bytes):
    """Rebuild ``FloatWeights`` from ``serialize_weights`` bytes."""
    import torch

    from quantize.detector import DetectorConfig
    from quantize.ptq import FloatWeights

    data = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)
    return FloatWeights(
        config=DetectorConfig.from_dict(data["config"]),
        state=data["state"],
        source=data["source"],
        kind=data["kind"],
        act_thresholds=data["act_thresholds"],
        metrics=data["metrics"],
    )


@functools.lru_cache(maxsize=2)
def _val_data(count: int):
    from quantize.dataset import DatasetSpec, generate, load_images

    dataset = generate(spec=DatasetSpec(), splits=("val",))
    return load_images(dataset, "val", count)


@functools.lru_cache(maxsize=2)
def _train_data(count: int | None):
    """Return the first count PTQ train images, or all of them for None, with their annotations."""
    from quantize.dataset import generate, load_images
    from quantize.ptq import PTQ_TRAIN_SPEC

    dataset = generate(spec=PTQ_TRAIN_SPEC, splits=("train",))
    return load_images(dataset, "train", count)


@contextlib.contextmanager
def _quiet():
    """Keep what torch, Brevitas and hls4ml print off stdout and out of the warnings, as the progress bar runs."""
    trace = io.StringIO()
    with contextlib.redirect_stdout(trace), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    if trace.getvalue():
        log.debug("dependency output:\n%s", trace.getvalue())

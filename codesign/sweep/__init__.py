"""Bit-width sweep: mAP, resources, latency and fps of the detector at many bit-widths.

The grid is weight bits x act bits x strategy x reuse factor, and every point
shares the same per-layer overrides. For each point the sweep builds the
detector at those bit-widths and calibrates it from a float or QAT checkpoint
(``quantize.ptq``). It measures mAP@0.5 on val images with the Brevitas model,
exports and lowers the model with hls4ml, and estimates it on a board with
``codesign.estimate``. Optionally it converts and C-simulates the point to
confirm that the C++ is bit-exact.

``sweep()`` validates the arguments and runs the grid; ``codesign.sweep.runner``
explains the output folder, resuming and scheduling.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path
from typing import Callable

from codesign.errors import InputError
from codesign.sweep.grid import (
    Point,
    SweepSpec,
    check_layer_names,
    parse_bits,
    parse_layer_bits,
    parse_reuse_factors,
    parse_strategies,
)
from codesign.sweep.runner import SweepResult, check_output_folder, run_sweep

log = logging.getLogger(__name__)

__all__ = [
    "Point",
    "SweepResult",
    "SweepSpec",
    "load_weights",
    "parse_bits",
    "parse_layer_bits",
    "parse_reuse_factors",
    "parse_strategies",
    "run_sweep",
    "sweep",
]


def sweep(
    model: str | Path | None,
    out: str | Path,
    *,
    board: str = "pynq-z2",
    weight_bits: str | None = None,
    act_bits: str | None = None,
    layer_bits: list[str] | tuple[str, ...] = (),
    strategies: str = "latency",
    reuse_factors: str | None = None,
    fit: bool = False,
    margin: float = 0.8,
    val_images: int = 500,
    calibration_images: int = 256,
    finetune_steps: int = 0,
    verify: int = 0,
    jpeg_quality: str | None = None,
    jpeg_subsampling: str | None = None,
    jpeg_tables: list[str] | tuple[str, ...] = (),
    finetune_epochs: int = 0,
    finetune_images: int | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
    on_point: Callable[[dict], None] | None = None,
) -> SweepResult:
    """Validate the arguments, as the ``codesign sweep`` options give them, and run the sweep into out.

    ``model`` is a codesign checkpoint or a float state dict of the detector,
    None for the bundled one. Bit-widths, reuse factors and strategies are
    strings in the option syntax (``"2-8"``, ``"1,2,4"``, ``"latency,resource"``).
    ``reuse_factors`` defaults to ``"1"`` unless ``fit`` is set, and both
    bit-width axes to ``"2-8"``.

    ``jpeg_quality`` (``"50,75,90"``) or ``jpeg_tables`` (cjpeg -qtables
    files) make it a JPEG sweep of the checkpoint at its own bit-widths
    (``codesign.sweep.jpeg``), over ``jpeg_subsampling`` (default ``"420"``).
    ``finetune_epochs`` and ``finetune_images`` fine-tune the detector per
    format there. Raises InputError for invalid arguments before any point runs.
    """
    from codesign.boards import load_board
    from quantize.dataset import DatasetSpec

    if jpeg_quality is not None or jpeg_tables:
        return _jpeg_sweep(
            model, Path(out), board=board, bit_options=(weight_bits, act_bits, list(layer_bits), finetune_steps,
                                                        verify, calibration_images),
            strategies=strategies, reuse_factors=reuse_factors, fit=fit, margin=margin, val_images=val_images,
            jpeg_quality=jpeg_quality, jpeg_subsampling=jpeg_subsampling, jpeg_tables=list(jpeg_tables),
            finetune_epochs=finetune_epochs, finetune_images=finetune_images, jobs=jobs, scheduler=scheduler,
            force=force, progress=progress, on_point=on_point,
        )
    for option, value in (("--jpeg-subsampling", jpeg_subsampling), ("--finetune-epochs", finetune_epochs or None),
                          ("--finetune-images", finetune_images)):
        if value is not None:
            raise InputError(f"{option} applies to JPEG sweeps; add --jpeg-quality or --jpeg-tables")
    weight_axis = parse_bits(weight_bits or "2-8", "--weight-bits")
    act_axis = parse_bits(act_bits or "2-8", "--act-bits")
    layer_weight_bits, layer_act_bits = parse_layer_bits(list(layer_bits))
    strategy_axis = parse_strategies(strategies)
    if fit and reuse_factors is not None:
        raise InputError("--fit chooses the reuse factors itself; leave out --reuse-factors")
    reuse_axis = None if fit else parse_reuse_factors(reuse_factors or "1")
    if val_images > DatasetSpec().val_images:
        raise InputError(f"--val-images must be at most {DatasetSpec().val_images}, the size of the val split")
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {jobs}")
    if scheduler is not None and "://" not in scheduler:
        raise InputError(f"--scheduler {scheduler!r}: expected a Dask scheduler address such as tcp://HOST:8786")
    resolved_board = load_board(board)
    check_output_folder(Path(out))

    # quantize.ptq imports torch and Brevitas, which take seconds, so it comes after the cheap checks.
    from quantize.ptq import PTQ_TRAIN_SPEC

    if calibration_images > PTQ_TRAIN_SPEC.train_images:
        raise InputError(f"--calibration-images must be at most {PTQ_TRAIN_SPEC.train_images}")

    model_path = _model_path(model)
    spec = SweepSpec(
        model=str(model_path),
        model_digest=_file_digest(model_path),
        board=resolved_board.name,
        board_digest=_file_digest(resolved_board.source),
        weight_bits=weight_axis,
        act_bits=act_axis,
        layer_weight_bits=layer_weight_bits,
        layer_act_bits=layer_act_bits,
        strategies=strategy_axis,
        reuse_factors=reuse_axis,
        fit=fit,
        margin=margin,
        val_images=val_images,
        calibration_images=calibration_images,
        finetune_steps=finetune_steps,
        verify=verify,
    )
    weights, _ = load_weights(model_path)
    check_layer_names(layer_weight_bits, layer_act_bits, weights.config.conv_names())
    return run_sweep(spec, Path(out), resolved_board, weights, jobs=jobs, scheduler=scheduler, force=force,
                     progress=progress, on_point=on_point)


def _jpeg_sweep(model, out: Path, *, board: str, bit_options: tuple, strategies: str, reuse_factors: str | None,
                fit: bool, margin: float, val_images: int, jpeg_quality: str | None, jpeg_subsampling: str | None,
                jpeg_tables: list[str], finetune_epochs: int, finetune_images: int | None, jobs, scheduler, force,
                progress, on_point) -> SweepResult:
    """Validate the arguments of a JPEG sweep and run it (see ``codesign.sweep.jpeg``)."""
    from codesign.boards import load_board
    from codesign.quantize import quantize
    from codesign.sweep.jpeg import DEFAULT_SUBSAMPLINGS, JpegAxes, check_formats, parse_qualities, \
        parse_subsamplings, read_table_files
    from quantize.dataset import DatasetSpec

    weight_bits, act_bits, layer_bits, finetune_steps, verify, calibration_images = bit_options
    bit_width_options = (("--weight-bits", weight_bits), ("--act-bits", act_bits), ("--layer-bits", layer_bits or None),
                         ("--finetune-steps", finetune_steps or None), ("--verify", verify or None),
                         ("--calibration-images", None if calibration_images == 256 else calibration_images))
    for option, value in bit_width_options:
        if value is not None:
            raise InputError(
                f"{option} applies to bit-width sweeps; a JPEG sweep measures the checkpoint at its own bit-widths "
                "(use --finetune-epochs to fine-tune it per format)"
            )
    strategy_axis = parse_strategies(strategies)
    if len(strategy_axis) != 1:
        raise InputError("a JPEG sweep estimates one design: give one --strategy")
    if fit and reuse_factors is not None:
        raise InputError("--fit chooses the reuse factors itself; leave out --reuse-factors")
    reuse_axis = None if fit else parse_reuse_factors(reuse_factors or "1")
    if reuse_axis is not None and len(reuse_axis) != 1:
        raise InputError("a JPEG sweep estimates one design: give one --reuse-factors value")
    if val_images < 1 or val_images > DatasetSpec().val_images:
        raise InputError(f"--val-images must be in 1..{DatasetSpec().val_images}, got {val_images}")
    if finetune_epochs < 0:
        raise InputError(f"--finetune-epochs must be at least 0, got {finetune_epochs}")
    if finetune_images is not None and not 1 <= finetune_images <= DatasetSpec().train_images:
        raise InputError(f"--finetune-images must be in 1..{DatasetSpec().train_images}, got {finetune_images}")
    if finetune_images is not None and finetune_epochs == 0:
        raise InputError("--finetune-images needs --finetune-epochs")
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {jobs}")
    if scheduler is not None and "://" not in scheduler:
        raise InputError(f"--scheduler {scheduler!r}: expected a Dask scheduler address such as tcp://HOST:8786")
    axes = JpegAxes(
        qualities=parse_qualities(jpeg_quality) if jpeg_quality is not None else (),
        tables=read_table_files(jpeg_tables),
        subsamplings=parse_subsamplings(jpeg_subsampling or DEFAULT_SUBSAMPLINGS),
        strategy=strategy_axis[0],
        reuse_factor=None if reuse_axis is None else reuse_axis[0],
        finetune_epochs=finetune_epochs,
        finetune_images=finetune_images,
    )
    resolved_board = load_board(board)
    check_output_folder(out)
    model_path = _model_path(model)
    config = quantize(model_path).config
    check_formats(axes, config.image_size)
    spec = SweepSpec(
        model=str(model_path),
        model_digest=_file_digest(model_path),
        board=resolved_board.name,
        board_digest=_file_digest(resolved_board.source),
        weight_bits=(config.weight_bits,),
        act_bits=(config.act_bits,),
        strategies=strategy_axis,
        reuse_factors=reuse_axis,
        fit=fit,
        margin=margin,
        val_images=val_images,
        jpeg=axes,
    )
    return run_sweep(spec, out, resolved_board, None, jobs=jobs, scheduler=scheduler, force=force,
                     progress=progress, on_point=on_point)


def load_weights(model: str | Path | None):
    """Load the float weights of a codesign checkpoint or a float state dict; None means the bundled detector.

    Returns (``quantize.ptq.FloatWeights``, resolved path). Raises InputError
    when the file is missing or is neither kind of checkpoint.
    """
    from codesign.quantize import quantize
    from quantize.ptq import load_float_weights, weights_from_module

    path = _model_path(model)
    unreadable = (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError)
    try:
        quantized = quantize(path)
    except (InputError, *unreadable) as qat_error:
        log.debug("%s is not a codesign checkpoint (%s); reading it as a float state dict", path, qat_error)
        try:
            return load_float_weights(path), path
        except unreadable as float_error:
            raise InputError(
                f"{path}: neither a codesign checkpoint nor a float state dict of the detector: {float_error}"
            ) from float_error
    return weights_from_module(quantized.module, str(path), quantized.metrics), path


def _model_path(model: str | Path | None) -> Path:
    """Return the absolute checkpoint path; None means the bundled detector."""
    from codesign.quantize import BUNDLED_CHECKPOINT

    path = Path(model).resolve() if model is not None else BUNDLED_CHECKPOINT
    if not path.is_file():
        raise InputError(f"model file not found: {path}")
    return path


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

"""Turn what the caller has (a model, a project folder, a checkpoint) into layer specs.

A project folder written by ``codesign convert`` is read in two steps:

1. Its ``model.qonnx.onnx`` is lowered again with ``codesign.lower.lower`` into a
   temporary folder. This rebuilds the hls4ml graph with the exact types of the
   precision table, the zero-weight counts and the FIFO depths, without compiling.
2. The generated firmware is what Vitis HLS would synthesize, so the per-layer
   ``reuse_factor`` and ``strategy`` in ``hls/firmware/parameters.h`` and the
   ``#pragma HLS STREAM depth`` values in ``hls/firmware/<project>.cpp`` replace
   the lowered values. A hand-edited reuse factor or an optimized FIFO depth
   therefore shows up in the estimate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import re
import tempfile
import warnings
from pathlib import Path

from codesign.boards import Board
from codesign.errors import InputError
from codesign.estimate.spec import LayerSpec, Strategy, specs_from_hls_model

log = logging.getLogger(__name__)

_LAYER_COMMENT = re.compile(r"^// (\S+)\s*$", re.MULTILINE)
_REUSE_FACTOR = re.compile(r"static const unsigned reuse_factor = (\d+);")
_STRATEGY = re.compile(r"static const unsigned strategy = nnet::(\w+);")
_STREAM_DEPTH = re.compile(r"#pragma HLS STREAM variable=(\w+) depth=(\d+)")


def load_layer_specs(source, board: Board) -> list[LayerSpec]:
    """Return the layer specs of a model given in any form that ``estimate`` accepts.

    ``source`` is a list of ``LayerSpec``, an hls4ml ``ModelGraph``, a
    ``codesign.lower.LoweredModel``, a project folder written by ``codesign convert``,
    a QONNX ``.onnx`` file, a detector checkpoint, or None for the bundled detector.
    ``board`` sets the part and clock of a conversion that has to be run.
    """
    if isinstance(source, (list, tuple)) and all(isinstance(item, LayerSpec) for item in source):
        return list(source)
    if hasattr(source, "hls_model"):
        return specs_from_hls_model(source.hls_model)
    if hasattr(source, "get_layers") and hasattr(source, "config"):
        return specs_from_hls_model(source)
    if source is None:
        return _specs_from_checkpoint(None, board)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return specs_from_project(path, board)
        if not path.exists():
            raise InputError(f"model or project not found: {path}")
        if path.suffix == ".onnx":
            return _specs_from_qonnx(path, board)
        return _specs_from_checkpoint(path, board)
    raise InputError(
        f"cannot estimate a {type(source).__name__}; pass an hls4ml ModelGraph, a project folder, "
        "a QONNX .onnx file or a detector checkpoint"
    )


def specs_from_project(root: Path, board: Board) -> list[LayerSpec]:
    """Rebuild the specs of a project folder, then apply its firmware's reuse factors and FIFO depths."""
    from codesign.export import load_qonnx
    from codesign.project import load_project

    project = load_project(root)
    reference = project.reference_model
    if not reference.is_file():
        raise InputError(f"{root}: {reference.name} is missing; run codesign convert again")
    with _quiet():
        qonnx = load_qonnx(reference)
    specs = _lower_to_specs(qonnx, board)

    firmware = project.hls_dir / "firmware"
    parameters = firmware / "parameters.h"
    top = firmware / f"{project.meta.get('project_name', 'myproject')}.cpp"
    if parameters.is_file():
        specs = apply_layer_parameters(specs, parameters.read_text())
    else:
        log.warning("%s not found; using the reuse factors of a fresh conversion", parameters)
    if top.is_file():
        specs = apply_stream_depths(specs, top.read_text())
    else:
        log.warning("%s not found; using hls4ml's default FIFO depths", top)
    return specs


def apply_layer_parameters(specs: list[LayerSpec], parameters_h: str) -> list[LayerSpec]:
    """Replace reuse factor and strategy with the values in hls4ml's ``parameters.h``.

    Each layer's config structs follow a ``// <layer name>`` comment line. The
    first ``reuse_factor`` and ``strategy`` after it belong to that layer.
    """
    blocks: dict[str, str] = {}
    matches = list(_LAYER_COMMENT.finditer(parameters_h))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(parameters_h)
        blocks[match.group(1)] = parameters_h[match.end():end]

    updated = []
    for spec in specs:
        block = blocks.get(spec.name)
        if block is None:
            updated.append(spec)
            continue
        changes = {}
        reuse = _REUSE_FACTOR.search(block)
        if reuse:
            changes["reuse_factor"] = int(reuse.group(1))
        strategy = _STRATEGY.search(block)
        if strategy and strategy.group(1) in (Strategy.LATENCY, Strategy.RESOURCE):
            changes["strategy"] = Strategy(strategy.group(1))
        updated.append(dataclasses.replace(spec, **changes) if changes else spec)
    return updated


def apply_stream_depths(specs: list[LayerSpec], top_cpp: str) -> list[LayerSpec]:
    """Replace FIFO depths with the ``#pragma HLS STREAM`` depths of the top-level function."""
    depths = {name: int(depth) for name, depth in _STREAM_DEPTH.findall(top_cpp)}
    updated = []
    for spec in specs:
        if spec.output_fifo_depth is not None and spec.output_stream in depths:
            spec = dataclasses.replace(spec, output_fifo_depth=depths[spec.output_stream])
        updated.append(spec)
    return updated


def _lower_to_specs(qonnx, board: Board) -> list[LayerSpec]:
    from codesign.lower import lower

    with tempfile.TemporaryDirectory(prefix="codesign-estimate-") as scratch, _quiet():
        lowered = lower(qonnx, board, Path(scratch) / "hls")
        return specs_from_hls_model(lowered.hls_model)


def _specs_from_qonnx(path: Path, board: Board) -> list[LayerSpec]:
    from codesign.export import load_qonnx

    with _quiet():
        qonnx = load_qonnx(path)
    return _lower_to_specs(qonnx, board)


def _specs_from_checkpoint(path: Path | None, board: Board) -> list[LayerSpec]:
    from codesign.export import export
    from codesign.quantize import quantize

    with _quiet():
        quantized = quantize(path)
    with tempfile.TemporaryDirectory(prefix="codesign-estimate-") as scratch:
        with _quiet():
            qonnx = export(quantized, Path(scratch))
        return _lower_to_specs(qonnx, board)


@contextlib.contextmanager
def _quiet():
    """Keep the progress lines and warnings that torch, Brevitas and hls4ml print off stdout."""
    trace = io.StringIO()
    with contextlib.redirect_stdout(trace), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    if trace.getvalue():
        log.debug("conversion output:\n%s", trace.getvalue())

"""Stage 2, export: Brevitas module to a cleaned-up QONNX model.

The exported model keeps PyTorch's NCHW layout; it is the golden reference
that the C++ must match. Brevitas 0.13 writes the weights to a ``.onnx.data``
file beside the ``.onnx``; ``ModelWrapper`` loads both.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from brevitas.export import export_qonnx
from google.protobuf.message import DecodeError
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.cleanup import cleanup_model

from codesign.errors import InputError
from codesign.quantize import QuantizedModel

log = logging.getLogger(__name__)


@dataclass
class QonnxModel:
    """A cleaned-up QONNX model on disk and in memory, NCHW layout."""

    path: Path
    model: ModelWrapper

    @property
    def input_name(self) -> str:
        return self.model.graph.input[0].name

    @property
    def output_name(self) -> str:
        return self.model.graph.output[0].name


def export(quantized: QuantizedModel, out_dir: Path) -> QonnxModel:
    """Export to ``out_dir/model.qonnx.onnx`` and return the cleaned-up model."""
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_path = out_dir / "model.brevitas.onnx"
    quantized.module.eval()
    # torch.onnx prints progress lines to stdout; keep them in the debug log.
    trace = io.StringIO()
    with torch.no_grad(), contextlib.redirect_stdout(trace), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(quantized.module, torch.zeros(quantized.input_shape), str(raw_path))
    log.debug("torch.onnx export output:\n%s", trace.getvalue())
    model = cleanup_model(ModelWrapper(str(raw_path)))
    path = out_dir / "model.qonnx.onnx"
    model.save(str(path))
    # The cleaned-up copy embeds its weights, so the raw export is no longer needed.
    raw_path.unlink()
    data_file = raw_path.with_name(raw_path.name + ".data")
    if data_file.exists():
        data_file.unlink()
    log.info("exported QONNX model to %s", path)
    return QonnxModel(path=path, model=model)


def load_qonnx(path: Path) -> QonnxModel:
    """Load and clean up a QONNX file written by this stage or by another tool."""
    from codesign.layouts import cleanup_channels_last, is_channels_last_model

    try:
        model = ModelWrapper(str(path))
    except (DecodeError, OSError) as error:
        raise InputError(f"{path}: not a readable ONNX file ({type(error).__name__}: {error})") from error
    if not model.graph.node or not model.graph.input:
        raise InputError(f"{path}: the ONNX file contains no graph (no nodes or no inputs)")
    if is_channels_last_model(model):
        return QonnxModel(path=Path(path), model=cleanup_channels_last(model))
    return QonnxModel(path=Path(path), model=cleanup_model(model))

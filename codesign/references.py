"""Independent software references, compared with each other before the C++ is judged.

- onnxruntime on the standard-op form of the QONNX model (the default reference);
- qonnx's own node-by-node executor on the QONNX model;
- Brevitas (PyTorch) on the checkpoint the project was converted from.

A disagreement among them means the model or an exporter is at fault, not the
generated C++, so csim reports it first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import qonnx.core.onnx_exec as oxe

from codesign.export import load_qonnx

log = logging.getLogger(__name__)


@dataclass
class ReferenceComparison:
    """One extra reference compared with onnxruntime's outputs."""

    name: str
    available: bool
    identical: bool | None = None
    max_abs_lsb: float | None = None
    note: str = ""


def _qonnx_outputs(reference_model: Path, inputs_nchw: np.ndarray) -> np.ndarray:
    model = load_qonnx(reference_model).model
    input_name = model.graph.input[0].name
    output_name = model.graph.output[0].name
    return np.concatenate([
        oxe.execute_onnx(model, {input_name: x[None].astype(np.float32)})[output_name] for x in inputs_nchw
    ])


def _brevitas_outputs(source: str, inputs_nchw: np.ndarray) -> np.ndarray | None:
    import torch

    from codesign.quantize import quantize

    if not source or not source.endswith(".pt") or not Path(source).is_file():
        return None
    module = quantize(source).module
    with torch.no_grad():
        return module(torch.from_numpy(inputs_nchw.astype(np.float32))).numpy()


def compare_references(project, inputs_nchw: np.ndarray, onnxruntime_outputs: np.ndarray) -> list[ReferenceComparison]:
    """Compare qonnx's executor and Brevitas with onnxruntime's outputs (all NCHW or 2-D)."""
    frac = project.output_frac
    results = []
    candidates = {
        "qonnx": lambda: _qonnx_outputs(project.reference_model, inputs_nchw),
        "brevitas": lambda: _brevitas_outputs(project.meta.get("source", ""), inputs_nchw),
    }
    for name, compute in candidates.items():
        outputs = compute()
        if outputs is None:
            source = project.meta.get("source", "") or "unknown"
            note = (f"the Brevitas reference needs the .pt checkpoint the project was converted from; "
                    f"this project's source is {source}")
            results.append(ReferenceComparison(name, available=False, note=note))
            continue
        difference = np.abs(np.ldexp(outputs.astype(np.float64) - onnxruntime_outputs.astype(np.float64), frac))
        results.append(ReferenceComparison(
            name, available=True, identical=bool(np.all(difference == 0)), max_abs_lsb=float(difference.max())
        ))
        log.info("reference %s vs onnxruntime: max difference %g LSB", name, difference.max())
    return results

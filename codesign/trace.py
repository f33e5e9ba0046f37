"""Layer trace: find the first layer whose C++ output differs from the reference.

The generated testbench saves every traced layer's output when the
environment variable ``CODESIGN_TB_TRACE`` names a file. The reference values
of the same tensors come from qonnx's executor on the channels-last model, the
one hls4ml was given.
The map from hls4ml layers to ONNX tensors is written by the project stage.
"""

from __future__ import annotations

import os
import struct
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import qonnx.core.onnx_exec as oxe
from qonnx.core.modelwrapper import ModelWrapper

from codesign.errors import CodesignError
from codesign.layouts import ChannelsLastToStandardOps
from codesign.thresholds import scale_to_codes


@dataclass
class LayerComparison:
    """Comparison of one traced layer's C++ output with its reference tensor."""

    layer: str
    tensor: str
    values: int
    differing: int
    max_abs_lsb: float


@dataclass
class TraceReport:
    """Per-layer comparison of one image, in the design's layer order."""

    image: int
    layers: list[LayerComparison] = field(default_factory=list)

    @property
    def first_diverging(self) -> LayerComparison | None:
        return next((row for row in self.layers if row.differing), None)

    def to_dict(self) -> dict:
        first = self.first_diverging
        return {"image": self.image, "first_diverging_layer": first.layer if first else None,
                "layers": [asdict(row) for row in self.layers]}


def trace_map(hls_model, channels_last: ModelWrapper, float_scales: bool = False) -> list[dict]:
    """Return, for each traced hls4ml layer, the ONNX tensor holding its reference output.

    hls4ml names a layer's output after the ONNX tensor it computes, except
    that a ReLU merged with the quantizer after it outputs the quantizer's
    tensor. Layers hls4ml inserted itself (zero padding) have no counterpart.
    With ``float_scales`` (``codesign.thresholds``), only threshold layers
    are mapped: they output quantizer codes, recorded with their scale, while
    the accumulators hold integers without the float scales and bias.
    """
    rows = []
    tensors = {name for node in channels_last.graph.node for name in node.output}
    tensors |= {i.name for i in channels_last.graph.input}
    for layer in hls_model.get_layers():
        if not layer.get_attr("trace", False):
            continue
        if float_scales and layer.get_attr("carried_scale") is None:
            continue
        tensor = layer.outputs[0]
        if layer.class_name == "Input":
            tensor = channels_last.graph.input[0].name
        if tensor not in tensors:
            continue
        consumers = channels_last.find_consumers(tensor)
        if layer.get_attr("quantizer") is not None and len(consumers) == 1 and consumers[0].op_type == "Quant":
            tensor = consumers[0].output[0]
        precision = layer.get_output_variable().type.precision
        row = {"layer": layer.name, "tensor": tensor, "frac": precision.width - precision.integer}
        if float_scales:
            row["scale"] = layer.get_attr("carried_scale")
        rows.append(row)
    return rows


def _read_trace_file(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    offset = 0
    layers: dict[str, np.ndarray] = {}
    while offset < len(data):
        (length,) = struct.unpack_from("<I", data, offset)
        name = data[offset + 4 : offset + 4 + length].decode()
        offset += 4 + length
        (count,) = struct.unpack_from("<Q", data, offset)
        offset += 8
        layers[name] = np.frombuffer(data, dtype="<f8", count=count, offset=offset).copy()
        offset += 8 * count
    return layers


def _reference_tensors(channels_last_path: Path, input_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """Return every tensor of the channels-last model for one input, from qonnx's executor.

    The channels-last model uses qonnx's own channels-last Conv and MaxPool
    ops, which onnxruntime cannot run; qonnx executes them (and Quant) node
    by node.
    """
    # Standard ops between Transposes compute what qonnx's channels-last ops compute, and qonnx's executor
    # runs them: its own channels-last MaxPool fails on the ceil_mode attribute (qonnx 1.0.0).
    model = ModelWrapper(str(channels_last_path)).transform(ChannelsLastToStandardOps())
    input_name = model.graph.input[0].name
    # qonnx runs each channels-last node through onnxruntime, which warns about
    # the node's opset on every call; those warnings are noise here.
    ort.set_default_logger_severity(3)
    return oxe.execute_onnx(model, {input_name: input_nhwc[None].astype(np.float32)}, return_full_exec_context=True)


def trace_image(project, binary: Path, inputs_file: Path, image: int, input_nhwc: np.ndarray) -> TraceReport:
    """Run one image with tracing on and compare every traced layer with the reference."""
    mapping = project.meta.get("trace") or []
    if not mapping:
        raise CodesignError(f"{project.root}: the project records no trace map; re-run codesign convert")
    trace_file = project.root / "csim" / f"trace_{image}.bin"
    trace_file.unlink(missing_ok=True)
    env = dict(os.environ, CODESIGN_TB_TRACE=str(trace_file))
    result = subprocess.run(
        [str(binary), str(inputs_file), str(image), "1", str(project.root / "csim" / "trace_outputs.bin")],
        capture_output=True, text=True, env=env,
    )
    if result.returncode not in (0, 1) or not trace_file.is_file():
        raise CodesignError(f"traced testbench run failed (exit status {result.returncode}): {result.stderr[-2000:]}")
    got = _read_trace_file(trace_file)
    reference = _reference_tensors(project.root / "model.channels_last.onnx", input_nhwc)

    report = TraceReport(image=image)
    for row in mapping:
        if row["layer"] not in got or row["tensor"] not in reference:
            continue
        hardware = got[row["layer"]]
        software = np.asarray(reference[row["tensor"]], dtype=np.float64).ravel()
        if row.get("scale") is not None:
            software = scale_to_codes(software, row["scale"])
        if hardware.size != software.size:
            raise CodesignError(
                f"trace of layer {row['layer']} contains {hardware.size} values, reference tensor "
                f"{row['tensor']} contains {software.size}"
            )
        difference = np.abs(np.ldexp(hardware - software, row["frac"]))
        report.layers.append(LayerComparison(
            layer=row["layer"], tensor=row["tensor"], values=int(hardware.size),
            differing=int(np.count_nonzero(difference)), max_abs_lsb=float(difference.max(initial=0.0)),
        ))
    return report

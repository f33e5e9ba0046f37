"""The software reference: the QONNX model run by onnxruntime.

onnxruntime cannot run QONNX's custom ``Quant`` op, so ``QuantToStandardOps``
rewrites each one into standard ONNX ops with the same arithmetic:

    y = (clip(round(x / scale + zero_point), q_min, q_max) - zero_point) * scale

ONNX ``Round`` rounds half to even, as QONNX's ``ROUND`` mode does. Quant nodes
on constants (weights, biases) are folded to constants with qonnx's own
implementation. Graph optimizations stay disabled in onnxruntime so that no
fused kernel changes the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.bipolar_quant import binary_quant
from qonnx.custom_op.general.quant import max_int, min_int, quant
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import SortGraph
from qonnx.transformation.infer_shapes import InferShapes

from codesign.errors import UnsupportedModelError
from codesign.layouts import ChannelsLastToStandardOps

_QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")


@dataclass(frozen=True)
class QuantParams:
    """Parameters of one QONNX ``Quant`` node with constant scale, zero point and bit-width."""

    scale: np.ndarray
    zero_point: np.ndarray
    bit_width: float
    signed: bool
    narrow: bool
    rounding_mode: str

    @property
    def code_min(self) -> int:
        return int(min_int(self.signed, self.narrow, self.bit_width))

    @property
    def code_max(self) -> int:
        return int(max_int(self.signed, self.narrow, self.bit_width))

    def quantize_codes(self, x: np.ndarray) -> np.ndarray:
        """Return the integer codes (value / scale, zero point removed) of x, as QONNX rounds them."""
        values = quant(
            np.asarray(x, dtype=np.float32),
            self.scale,
            self.zero_point,
            np.float32(self.bit_width),
            self.signed,
            self.narrow,
            self.rounding_mode,
        )
        return np.rint(values / self.scale).astype(np.int64)


def quant_params(model: ModelWrapper, node: onnx.NodeProto) -> QuantParams:
    """Read a Quant node's constant parameters; raise UnsupportedModelError if any is not constant."""
    values = [model.get_initializer(name) for name in node.input[1:4]]
    if any(v is None for v in values):
        raise UnsupportedModelError(
            f"node {node.name!r} (Quant): scale, zero point and bit-width must be constants"
        )
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    rounding = attrs.get("rounding_mode", b"ROUND")
    return QuantParams(
        scale=np.asarray(values[0], dtype=np.float32),
        zero_point=np.asarray(values[1], dtype=np.float32),
        bit_width=float(np.asarray(values[2]).item()),
        signed=bool(attrs.get("signed", 1)),
        narrow=bool(attrs.get("narrow", 0)),
        rounding_mode=rounding.decode() if isinstance(rounding, bytes) else str(rounding),
    )


class QuantToStandardOps(Transformation):
    """Fold Quant nodes on constants and expand the others into standard ONNX ops."""

    def apply(self, model: ModelWrapper):
        graph = model.graph
        for index, node in enumerate(graph.node):
            if node.op_type == "BipolarQuant" and model.get_initializer(node.input[0]) is not None:
                # Bipolar weights: sign (+1 at zero) times the scale, as qonnx computes it.
                folded = binary_quant(model.get_initializer(node.input[0]), model.get_initializer(node.input[1]))
                model.set_initializer(node.output[0], np.asarray(folded, dtype=np.float32))
                graph.node.remove(node)
                return model, True
            if node.op_type == "BipolarQuant":
                graph.node.extend(self._expand_bipolar(model, node))
                graph.node.remove(node)
                return model, True
            if node.op_type != "Quant":
                continue
            params = quant_params(model, node)
            if params.rounding_mode != "ROUND":
                raise UnsupportedModelError(
                    f"node {node.name!r} (Quant): rounding mode {params.rounding_mode} is not supported; "
                    "supported: ROUND (half to even)"
                )
            source = model.get_initializer(node.input[0])
            if source is not None:
                folded = quant(
                    source, params.scale, params.zero_point, np.float32(params.bit_width),
                    params.signed, params.narrow, params.rounding_mode,
                )
                model.set_initializer(node.output[0], np.asarray(folded, dtype=np.float32))
            else:
                graph.node.extend(self._expand(model, node, params))
            graph.node.remove(node)
            return model, True
        model = model.transform(SortGraph())
        return model, False

    @staticmethod
    def _expand_bipolar(model: ModelWrapper, node: onnx.NodeProto) -> list[onnx.NodeProto]:
        """Expand y = (x >= 0 ? +1 : -1) * scale, qonnx's BipolarQuant."""
        prefix = node.name or node.output[0]
        scale = np.asarray(model.get_initializer(node.input[1]), dtype=np.float32)
        model.set_initializer(f"{prefix}_zero", np.float32(0.0))
        model.set_initializer(f"{prefix}_positive", scale)
        model.set_initializer(f"{prefix}_negative", -scale)
        return [
            helper.make_node("GreaterOrEqual", [node.input[0], f"{prefix}_zero"], [f"{prefix}_sign"]),
            helper.make_node("Where", [f"{prefix}_sign", f"{prefix}_positive", f"{prefix}_negative"], [node.output[0]]),
        ]

    @staticmethod
    def _expand(model: ModelWrapper, node: onnx.NodeProto, params: QuantParams) -> list[onnx.NodeProto]:
        prefix = node.name or node.output[0]
        names = {key: f"{prefix}_{key}" for key in ("scale", "zp", "min", "max")}
        model.set_initializer(names["scale"], params.scale)
        model.set_initializer(names["zp"], params.zero_point)
        model.set_initializer(names["min"], np.float32(params.code_min))
        model.set_initializer(names["max"], np.float32(params.code_max))
        steps = [f"{prefix}_{step}" for step in ("div", "add", "round", "clip", "sub")]
        return [
            helper.make_node("Div", [node.input[0], names["scale"]], [steps[0]]),
            helper.make_node("Add", [steps[0], names["zp"]], [steps[1]]),
            helper.make_node("Round", [steps[1]], [steps[2]]),
            helper.make_node("Clip", [steps[2], names["min"], names["max"]], [steps[3]]),
            helper.make_node("Sub", [steps[3], names["zp"]], [steps[4]]),
            helper.make_node("Mul", [steps[4], names["scale"]], [node.output[0]]),
        ]


def to_standard_onnx(model: ModelWrapper) -> ModelWrapper:
    """Return a copy of a QONNX model that onnxruntime runs with identical arithmetic."""
    model = ModelWrapper(onnx.ModelProto.FromString(model.model.SerializeToString()))
    # qonnx's channels-last ops become standard ops between Transposes; the model keeps its NHWC tensors.
    model = model.transform(ChannelsLastToStandardOps())
    model = model.transform(QuantToStandardOps())
    model = model.transform(InferShapes())
    for node in model.graph.node:
        if node.domain in _QONNX_DOMAINS:
            raise UnsupportedModelError(
                f"node {node.name!r} ({node.op_type}): not supported by the reference; supported QONNX op: Quant"
            )
    opset = max((o.version for o in model.model.opset_import if o.domain in ("", "ai.onnx")), default=13)
    del model.model.opset_import[:]
    model.model.opset_import.append(helper.make_opsetid("", max(opset, 13)))
    return model


class Reference:
    """An onnxruntime session over the standard-op form of a QONNX model."""

    def __init__(self, model: ModelWrapper, threads: int = 0):
        standard = to_standard_onnx(model)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.model = standard
        self.session = ort.InferenceSession(standard.model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def run(self, inputs: np.ndarray, batch_size: int = 50) -> np.ndarray:
        """Run float inputs (the model's own layout) one by one; return stacked outputs."""
        outputs = []
        for item in inputs:
            outputs.append(self.session.run(None, {self.input_name: item[None].astype(np.float32)})[0][0])
        return np.stack(outputs)

    def save(self, path: Path) -> None:
        self.model.save(str(path))

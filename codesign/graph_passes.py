"""Graph passes that bring ONNX models from other tools into the form that exact lowering reads.

- ``qcdq_to_qonnx``: QuantizeLinear -> Clip -> DequantizeLinear chains (as
  Brevitas ``export_onnx_qcdq`` writes them) become QONNX ``Quant`` nodes,
  with qonnx's ``QCDQToQuant``.
- ``split_host_steps``: float operations that the design cannot compute
  exactly move to the host, and both the reference and the design leave them
  out. The rule:

  * preprocessing: when the graph input reaches its first ``Quant`` only
    through shape and elementwise operations (``PREPROCESS_OPS``), those
    operations run on the host. The graph is cut at that ``Quant``'s input,
    so the design reads that quantizer's integer codes.
  * postprocessing: a chain of ``Softmax``/``LogSoftmax`` and elementwise
    operations with constant, unquantized operands (``POSTPROCESS_OPS``) at the
    graph output runs on the host. The design and the reference end at the
    chain's input. A constant produced by a ``Quant`` node (a quantized bias)
    keeps its operation in the design.

  Each cut-off part is saved as its own ONNX model, so the host can run it.
- ``add_input_quantizer``: a graph input without a quantizer gets a ``Quant``
  node of a given fixed-point type. For inputs that this type represents,
  the node is the identity, so the model computes what it computed before.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.qcdq_to_qonnx import QCDQToQuant
from qonnx.util.cleanup import cleanup_model

from codesign.errors import InputError, UnsupportedModelError

log = logging.getLogger(__name__)

QCDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
PREPROCESS_OPS = (
    "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Shape", "Gather", "Concat", "Cast", "Identity",
    "Mul", "Div", "Sub", "Add",
)
POSTPROCESS_OPS = ("Softmax", "LogSoftmax", "Mul", "Div", "Sub", "Add", "Identity")
INPUT_QUANT_NAME = "codesign_input_quant"


@dataclass
class HostStep:
    """A part of the source model that runs on the host, before or after the design."""

    role: str
    ops: list[str]
    model: ModelWrapper
    file: str

    def to_dict(self) -> dict:
        return {"role": self.role, "ops": self.ops, "file": self.file}


@dataclass
class ModelPreparation:
    """Record of what the passes changed: the source format, the host steps, an added input quantizer."""

    source_format: str = "qonnx"
    host_steps: list[HostStep] = field(default_factory=list)
    added_input_quantizer: str | None = None

    def to_dict(self) -> dict:
        return {
            "source_format": self.source_format,
            "host_steps": [step.to_dict() for step in self.host_steps],
            "added_input_quantizer": self.added_input_quantizer,
        }


def is_qcdq(model: ModelWrapper) -> bool:
    """Return True when the model quantizes with ONNX QuantizeLinear/DequantizeLinear nodes."""
    return any(node.op_type in QCDQ_OPS for node in model.graph.node)


def qcdq_to_qonnx(model: ModelWrapper) -> ModelWrapper:
    """Fuse every QuantizeLinear -> [Clip ->] DequantizeLinear chain into a QONNX Quant node."""
    model = model.transform(QCDQToQuant())
    left = [node for node in model.graph.node if node.op_type in QCDQ_OPS]
    if left:
        node = left[0]
        raise UnsupportedModelError(
            f"node {node.name!r} ({node.op_type}): qonnx's QCDQToQuant could not fuse it into a Quant node; "
            "its scale and zero point must be constants shared by the QuantizeLinear/DequantizeLinear pair"
        )
    # QCDQToQuant keeps integer zero points that are not all zero; QONNX Quant reads float parameters.
    for node in model.get_nodes_by_op_type("Quant"):
        for name in node.input[1:4]:
            value = model.get_initializer(name)
            if value is not None and value.dtype != np.float32:
                model.set_initializer(name, value.astype(np.float32))
    return cleanup_model(model)


def _is_constant(model: ModelWrapper, name: str) -> bool:
    return name == "" or model.get_initializer(name) is not None


def _host_model(model: ModelWrapper, nodes: list[onnx.NodeProto], inputs: list[str], outputs: list[str]) -> ModelWrapper:
    """Build a standalone model of ``nodes`` with the given graph inputs and outputs."""
    used = {name for node in nodes for name in node.input}
    initializers = [init for init in model.graph.initializer if init.name in used]

    def value_info(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, model.get_tensor_shape(name))

    graph = helper.make_graph(
        [onnx.NodeProto.FromString(node.SerializeToString()) for node in nodes],
        "codesign_host_step",
        [value_info(name) for name in inputs],
        [value_info(name) for name in outputs],
        initializers,
    )
    opsets = [opset for opset in model.model.opset_import if opset.domain in ("", "ai.onnx")]
    host = helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", 13)])
    return ModelWrapper(host)


def _drop_value_info(model: ModelWrapper, name: str) -> None:
    """Remove the value_info of a tensor that becomes a graph input or output (ONNX keeps one entry)."""
    for info in list(model.graph.value_info):
        if info.name == name:
            model.graph.value_info.remove(info)


def _drop_unused_initializers(model: ModelWrapper) -> None:
    used = {name for node in model.graph.node for name in node.input}
    for init in list(model.graph.initializer):
        if init.name not in used:
            model.graph.initializer.remove(init)


def _preprocessing_nodes(model: ModelWrapper) -> tuple[list[onnx.NodeProto], str] | None:
    """Return the nodes between the graph input and its first Quant, and that Quant's input.

    Returns None when the input reaches a node outside ``PREPROCESS_OPS``
    before any Quant, or when it feeds a Quant directly.
    """
    dynamic = {model.graph.input[0].name}
    nodes: list[onnx.NodeProto] = []
    boundary: set[str] = set()
    for node in model.graph.node:
        dynamic_inputs = [name for name in node.input if name in dynamic]
        if not dynamic_inputs:
            continue
        if node.op_type == "Quant" and node.input[0] in dynamic and len(dynamic_inputs) == 1:
            boundary.add(node.input[0])
        elif node.op_type in PREPROCESS_OPS:
            nodes.append(node)
            dynamic.update(node.output)
        else:
            return None
    if not nodes or len(boundary) != 1:
        return None
    (cut,) = boundary
    if any(consumer.op_type != "Quant" for consumer in model.find_consumers(cut)):
        return None
    return nodes, cut


def split_preprocessing(model: ModelWrapper) -> tuple[ModelWrapper, HostStep | None]:
    """Move the operations before the input quantizer to a host model (see the module docstring)."""
    found = _preprocessing_nodes(model)
    if found is None:
        return model, None
    nodes, cut = found
    original_input = model.graph.input[0].name
    host = _host_model(model, nodes, [original_input], [cut])
    cut_shape = model.get_tensor_shape(cut)
    for node in nodes:
        model.graph.node.remove(node)
    model.graph.input.remove(model.graph.input[0])
    _drop_value_info(model, cut)
    model.graph.input.insert(0, helper.make_tensor_value_info(cut, onnx.TensorProto.FLOAT, cut_shape))
    _drop_unused_initializers(model)
    ops = [node.op_type for node in nodes]
    log.warning(
        "host-side preprocessing: %s runs on the host before the design; the design and the reference start "
        "at tensor %r (shape %s)", " -> ".join(ops), cut, cut_shape,
    )
    return cleanup_model(model), HostStep("preprocess", ops, host, "host_preprocess.onnx")


def _postprocessing_nodes(model: ModelWrapper) -> tuple[list[onnx.NodeProto], str] | None:
    """Return the trailing host-side chain (output first) and the tensor where the design ends."""
    if len(model.graph.output) != 1:
        return None
    nodes: list[onnx.NodeProto] = []
    tensor = model.graph.output[0].name
    while True:
        node = model.find_producer(tensor)
        if node is None or node.op_type not in POSTPROCESS_OPS:
            break
        dynamic = [name for name in node.input if not _is_constant(model, name)]
        if len(dynamic) != 1 or len(model.find_consumers(dynamic[0])) != 1:
            break
        nodes.append(node)
        tensor = dynamic[0]
    if not nodes or model.find_producer(tensor) is None:
        return None
    return nodes, tensor


def split_postprocessing(model: ModelWrapper) -> tuple[ModelWrapper, HostStep | None]:
    """Move a trailing Softmax or float affine chain to a host model (see the module docstring)."""
    found = _postprocessing_nodes(model)
    if found is None:
        return model, None
    nodes, cut = found
    nodes.reverse()
    original_output = model.graph.output[0].name
    host = _host_model(model, nodes, [cut], [original_output])
    cut_shape = model.get_tensor_shape(cut)
    for node in nodes:
        model.graph.node.remove(node)
    model.graph.output.remove(model.graph.output[0])
    _drop_value_info(model, cut)
    model.graph.output.append(helper.make_tensor_value_info(cut, onnx.TensorProto.FLOAT, cut_shape))
    _drop_unused_initializers(model)
    ops = [node.op_type for node in nodes]
    log.warning(
        "host-side postprocessing: %s runs on the host after the design; the design and the reference end "
        "at tensor %r (shape %s), which C simulation compares exactly", " -> ".join(ops), cut, cut_shape,
    )
    return cleanup_model(model), HostStep("postprocess", ops, host, "host_postprocess.onnx")


_FIXED_TYPE = re.compile(r"^(u?)fixed<\s*(\d+)\s*,\s*(-?\d+)\s*>$")


def parse_fixed_type(text: str) -> tuple[int, int, bool]:
    """Parse ``fixed<W,I>`` or ``ufixed<W,I>``; return (width, fractional bits, signed)."""
    match = _FIXED_TYPE.match(text.strip())
    if match is None:
        raise InputError(f"invalid fixed-point type {text!r}; expected fixed<W,I> or ufixed<W,I>, e.g. fixed<16,6>")
    signed = match.group(1) == ""
    width, integer = int(match.group(2)), int(match.group(3))
    if not 2 <= width <= 32:
        raise InputError(f"invalid fixed-point type {text!r}: the width must be between 2 and 32")
    return width, width - integer, signed


def add_input_quantizer(model: ModelWrapper, type_text: str) -> tuple[ModelWrapper, bool]:
    """Insert a Quant node of type ``type_text`` on a graph input that does not feed one Quant node.

    Returns the model and whether a node was inserted.
    """
    input_name = model.graph.input[0].name
    consumers = model.find_consumers(input_name)
    if len(consumers) == 1 and consumers[0].op_type == "Quant":
        return model, False
    width, frac, signed = parse_fixed_type(type_text)
    quantized = f"{INPUT_QUANT_NAME}_out"
    params = {
        "scale": np.float32(2.0**-frac),
        "zero_point": np.float32(0.0),
        "bit_width": np.float32(width),
    }
    for key, value in params.items():
        model.set_initializer(f"{INPUT_QUANT_NAME}_{key}", np.asarray(value, dtype=np.float32))
    for consumer in consumers:
        for index, name in enumerate(consumer.input):
            if name == input_name:
                consumer.input[index] = quantized
    node = helper.make_node(
        "Quant",
        [input_name, *(f"{INPUT_QUANT_NAME}_{key}" for key in params)],
        [quantized],
        name=INPUT_QUANT_NAME,
        domain="qonnx.custom_op.general",
        signed=int(signed),
        narrow=0,
        rounding_mode="ROUND",
    )
    model.graph.node.insert(0, node)
    model.set_tensor_shape(quantized, model.get_tensor_shape(input_name))
    log.warning(
        "graph input %r has no quantizer: added %s (%s); the design reads its codes, and the model is "
        "unchanged only for inputs that this type represents", input_name, INPUT_QUANT_NAME, type_text,
    )
    return cleanup_model(model), True


def prepare_onnx(model: ModelWrapper, input_type: str) -> tuple[ModelWrapper, ModelPreparation]:
    """Apply every pass in order: QCDQ to QONNX, host-side steps, input quantizer."""
    preparation = ModelPreparation()
    if is_qcdq(model):
        log.info("the model is in QCDQ form: converting it to QONNX with qonnx's QCDQToQuant")
        model = qcdq_to_qonnx(model)
        preparation.source_format = "qcdq"
    model, pre = split_preprocessing(model)
    model, post = split_postprocessing(model)
    preparation.host_steps = [step for step in (pre, post) if step is not None]
    model, added = add_input_quantizer(model, input_type)
    if added:
        preparation.added_input_quantizer = input_type
    return model, preparation

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
from codesign.reference import QuantParams, quant_params

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


def _host_model(
    model: ModelWrapper, nodes: list[onnx.NodeProto], inputs: list[str], outputs: list[str]
) -> ModelWrapper:
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


def host_step_notes(preparation: ModelPreparation) -> str:
    """Return a Markdown section on the host-side steps and an added input quantizer, or "" when there are none."""
    lines = []
    for step in preparation.host_steps:
        where = "before" if step.role == "preprocess" else "after"
        lines.append(f"- {step.role}: {' -> '.join(step.ops)} runs on the host {where} the design "
                     f"(`{step.file}`). The reference leaves it out too, so C simulation compares the design's "
                     f"{'input codes' if step.role == 'preprocess' else 'output'} exactly, not the source model's "
                     f"{'input' if step.role == 'preprocess' else 'final output'}.")
    if preparation.added_input_quantizer:
        lines.append(f"- input: the source model had no input quantizer, so a `{preparation.added_input_quantizer}` "
                     "quantizer was added; the design is exact for inputs that this type represents.")
    if not lines:
        return ""
    return "\n## Host-side steps\n\n" + "\n".join(lines) + "\n"


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


def _constant_quant_codes(model: ModelWrapper, tensor: str):
    """Return (Quant node, its parameters, integer codes) of a quantized constant, or None."""
    producer = model.find_producer(tensor)
    if producer is None or producer.op_type != "Quant" or model.get_initializer(producer.input[0]) is None:
        return None
    params = quant_params(model, producer)
    return producer, params, params.quantize_codes(model.get_initializer(producer.input[0]))


def _unit_scale(params: QuantParams) -> bool:
    return bool(np.all(params.scale == 1.0) and np.all(params.zero_point == 0))


def _source_code_range(model: ModelWrapper, source: onnx.NodeProto | None) -> tuple[int, int] | None:
    """Return the integer code range of a MatMul input with unit scale, or None for any other input."""
    from codesign.thresholds import THRESHOLD_OP

    if source is not None and source.op_type == "Quant" and model.get_initializer(source.input[0]) is None:
        params = quant_params(model, source)
        return (params.code_min, params.code_max) if _unit_scale(params) else None
    if source is not None and source.op_type == THRESHOLD_OP:
        attributes = {a.name: helper.get_attribute_value(a) for a in source.attribute}
        return (attributes["out_min"], attributes["out_max"]) if attributes.get("carried_scale") == 1.0 else None
    return None


def _batchnorm_quant_pairs(model: ModelWrapper) -> list[tuple[onnx.NodeProto, onnx.NodeProto, onnx.NodeProto]]:
    """Return the MatMul -> BatchNormalization -> Quant chains that ``batchnorm_to_thresholds`` lowers.

    A chain qualifies when the BatchNormalization feeds only that Quant and
    the MatMul's input, its weights and the Quant all have scale 1 and zero
    point 0. Other chains stay for the other lowering paths, which reject
    what they cannot compute exactly.
    """
    chains = []
    for batchnorm in model.get_nodes_by_op_type("BatchNormalization"):
        matmul = model.find_producer(batchnorm.input[0])
        consumers = model.find_consumers(batchnorm.output[0]) or []
        if matmul is None or matmul.op_type != "MatMul" or len(consumers) != 1 or consumers[0].op_type != "Quant":
            continue
        weights = _constant_quant_codes(model, matmul.input[1])
        source_range = _source_code_range(model, model.find_producer(matmul.input[0]))
        if weights is None or source_range is None:
            continue
        if _unit_scale(weights[1]) and _unit_scale(quant_params(model, consumers[0])):
            chains.append((matmul, batchnorm, consumers[0]))
    return chains


def needs_batchnorm_thresholds(model: ModelWrapper) -> bool:
    """Return True when a MatMul -> BatchNormalization -> Quant chain qualifies for thresholds."""
    return bool(_batchnorm_quant_pairs(model))


def _reference_codes(model: ModelWrapper, batchnorm: onnx.NodeProto, quant: onnx.NodeProto,
                     accumulators: np.ndarray, channels: int) -> np.ndarray:
    """Run BatchNormalization -> Quant as the reference does; return the output codes per accumulator value.

    The result has shape (len(accumulators), channels). Each value runs on its
    own with the reference's per-item shape (1, channels), so onnxruntime takes
    the same kernel path as in C simulation.
    """
    from codesign.reference import Reference

    names = list(batchnorm.input[1:]) + list(quant.input[1:])
    initializers = [onnx.numpy_helper.from_array(np.asarray(model.get_initializer(name)), name) for name in names]
    graph = helper.make_graph(
        [onnx.NodeProto.FromString(node.SerializeToString()) for node in (batchnorm, quant)],
        "codesign_batchnorm_quant",
        [helper.make_tensor_value_info(batchnorm.input[0], onnx.TensorProto.FLOAT, [1, channels])],
        [helper.make_tensor_value_info(quant.output[0], onnx.TensorProto.FLOAT, [1, channels])],
        initializers,
    )
    opsets = [opset for opset in model.model.opset_import if opset.domain in ("", "ai.onnx")]
    reference = Reference(ModelWrapper(helper.make_model(graph, opset_imports=opsets)), threads=1)
    inputs = np.repeat(accumulators.astype(np.float32)[:, None], channels, axis=1)
    params = quant_params(model, quant)
    return np.rint(reference.run(inputs) / params.scale).astype(np.int64) - int(params.zero_point.ravel()[0])


def _threshold_row(codes: np.ndarray, accumulators: np.ndarray, levels: range, where: str) -> list[int]:
    """Return thresholds T_k with codes == levels.start - 1 + count(accumulators >= T_k), for ascending codes."""
    if np.any(np.diff(codes) < 0):
        raise UnsupportedModelError(f"{where}: the quantized output is not monotonic in the accumulator")
    row = []
    for level in levels:
        reached = np.nonzero(codes >= level)[0]
        row.append(int(accumulators[reached[0]]) if reached.size else int(accumulators[-1]) + 1)
    return row


def batchnorm_to_thresholds(model: ModelWrapper) -> ModelWrapper:
    """Return a copy in which each MatMul -> BatchNormalization -> Quant chain ends in a threshold node.

    The node is ``codesign.thresholds``' ``CodesignThreshold`` (FINN's
    MultiThreshold form): output code = code_min + count(A >= T[c, k]) on the
    integer accumulator A. Its thresholds come from running the reference's
    own BatchNormalization and Quant on every accumulator value that the
    MatMul can produce, so they reproduce the float32 reference bit for bit.
    A channel whose output falls as A rises (a negative BatchNormalization
    scale) has its weight column negated, which flips A. The rewrite is for
    hls4ml's input only: the reference keeps the BatchNormalization.

    Only chains with unit-scale, zero-point-0 input, weight and output
    quantizers qualify (integer codes throughout, as in FINN's TFC networks).
    A qualifying chain whose output is not monotonic in the accumulator
    raises UnsupportedModelError naming the node.
    """
    from codesign.thresholds import DOMAIN, THRESHOLD_OP

    model = ModelWrapper(onnx.ModelProto.FromString(model.model.SerializeToString()))
    for matmul, batchnorm, quant in _batchnorm_quant_pairs(model):
        where = f"node {batchnorm.name!r} (BatchNormalization)"
        weight_node, weight_params, weight_codes = _constant_quant_codes(model, matmul.input[1])
        low, high = _source_code_range(model, model.find_producer(matmul.input[0]))
        output_params = quant_params(model, quant)
        if len(model.find_consumers(weight_node.output[0])) != 1:
            raise UnsupportedModelError(f"{where}: the MatMul's weight quantizer is shared with another node")

        # Accumulator range per output channel from the real weight codes and the input code range.
        positive = np.where(weight_codes > 0, weight_codes, 0).sum(axis=0)
        negative = np.where(weight_codes < 0, weight_codes, 0).sum(axis=0)
        reach = int(max(np.abs(positive * high + negative * low).max(), np.abs(positive * low + negative * high).max()))
        accumulators = np.arange(-reach, reach + 1)
        channels = weight_codes.shape[1]
        codes = _reference_codes(model, batchnorm, quant, accumulators, channels)

        levels = range(output_params.code_min + 1, output_params.code_max + 1)
        rows = []
        negated = weight_codes.copy()
        for channel in range(channels):
            column = codes[:, channel]
            if np.any(np.diff(column) < 0):
                # Falling output: negate the weights, so A' = -A, and read the codes in A' order.
                flipped = -weight_codes[:, channel]
                if flipped.min() < weight_params.code_min or flipped.max() > weight_params.code_max:
                    raise UnsupportedModelError(f"{where}: channel {channel} needs negated weights that "
                                                "its weight quantizer cannot represent")
                negated[:, channel] = flipped
                column = column[::-1]
            rows.append(_threshold_row(column, accumulators, levels, f"{where} channel {channel}"))
        model.set_initializer(weight_node.input[0], negated.astype(np.float32))

        threshold = helper.make_node(
            THRESHOLD_OP, [matmul.output[0]], [quant.output[0]], name=quant.name, domain=DOMAIN,
            thresholds=onnx.numpy_helper.from_array(np.asarray(rows, dtype=np.int64)),
            offset=int(output_params.code_min), out_min=int(output_params.code_min),
            out_max=int(output_params.code_max), carried_scale=1.0,
        )
        index = list(model.graph.node).index(batchnorm)
        model.graph.node.insert(index, threshold)
        model.graph.node.remove(batchnorm)
        model.graph.node.remove(quant)
        log.info("%s and %s: lowered to %d thresholds per channel, evaluated on accumulators %d..%d",
                 batchnorm.name, quant.name, len(levels), -reach, reach)
    _drop_unused_initializers(model)
    return model

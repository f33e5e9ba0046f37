"""Exact lowering of float (non-power-of-two) scales, zero points and bipolar weights.

A float scale is not a fixed-point number, so ap_fixed types cannot carry it.
Instead, this rewrite of the channels-last QONNX model makes every tensor
after the input quantizer an integer code tensor with a *carried scale* ``g``
(real value = code * g) that lives only in Python:

- the input quantizer feeds its codes (scale 1 in the rewritten graph, ``g``
  = its scale);
- weight quantizers (``Quant`` and ``BipolarQuant`` on constants) are replaced
  by their integer codes. The per-output-channel weight scale moves into the
  layer's affine map ``v_c = alpha_c * A + beta_c`` on the integer
  accumulator ``A``. There ``alpha_c = g_in * s_w[c]``, and ``beta_c`` is the
  bias, which leaves the graph;
- a ``Quant`` activation (possibly after a ReLU, a bias Add or max pooling)
  becomes a ``CodesignThreshold`` node: output code = offset + count(A >= T_k)
  with per-channel integer thresholds ``T_k`` (FINN's MultiThreshold form).
  A ``BipolarQuant`` activation becomes one threshold with code -1 + 2 * count.
  The code is the quantizer's integer minus its zero point, so zero padding
  and the next layer see a real zero as code 0; the carried scale of the
  result is the quantizer's scale;
- a ``BatchNormalization`` between the layer and its quantizer (QAT models
  keep it there) also ends in a ``CodesignThreshold`` node, whose thresholds
  come from the reference's own float32 arithmetic (``codesign.batchnorm``);
- a convolution or dense layer whose output is the graph output without a
  quantizer becomes a ``CodesignRescale`` node: the nearest value, round half
  to even, of a fixed type chosen by the precision stage.

Every float32 scale and bias is a dyadic rational, so ``fractions.Fraction``
computes thresholds and rescale constants without rounding. The thresholds
reproduce QONNX's ``Quant`` (round half to even, then clip) in exact
arithmetic, ties included.

NOTE: the csim reference computes in float32, whose convolution sums round.
Where a pre-activation lies within that rounding of a rounding boundary, the
reference's code can differ from the exact one that the C++ computes. On the
float-scale detector this happened to 1 of 2.8 million hidden codes over 20
val images (exact value 8.4999991 codes, float32 reference 8.5000038).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import onnx
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper

from codesign.errors import UnsupportedModelError
from codesign.reference import QuantParams, quant_params

log = logging.getLogger(__name__)

DOMAIN = "codesign.hls_ext"
THRESHOLD_OP = "CodesignThreshold"
RESCALE_OP = "CodesignRescale"
# The precision stage clamps thresholds to the accumulator's range. Until
# then, these two values stand for "always true" and "never true".
THRESHOLD_NEVER = 1 << 62
THRESHOLD_ALWAYS = -(1 << 62)
# Ops that move or select codes without changing them. A positive carried
# scale passes through them unchanged.
_PASS_THROUGH = ("MaxPool", "Flatten", "Reshape", "Transpose", "Identity")


def _is_power_of_two(values: np.ndarray) -> bool:
    mantissa, _ = np.frexp(np.asarray(values, dtype=np.float64))
    return bool(np.all(mantissa == 0.5))


def needs_threshold_lowering(model: ModelWrapper) -> bool:
    """Return True when a Quant has a non-power-of-two scale or a zero point, or a BipolarQuant is present."""
    for node in model.graph.node:
        if node.op_type == "BipolarQuant":
            return True
        if node.op_type != "Quant":
            continue
        scale = model.get_initializer(node.input[1])
        zero_point = model.get_initializer(node.input[2])
        if scale is None or zero_point is None:
            continue
        if not _is_power_of_two(scale) or np.any(np.asarray(zero_point) != 0):
            return True
    return _has_layer_batchnorm(model)


def _has_layer_batchnorm(model: ModelWrapper) -> bool:
    """Return True when a BatchNormalization follows a Conv, a MatMul or its bias Add.

    The integer-code MatMul -> BatchNormalization -> Quant chains of FINN-style
    models keep their own lowering (``codesign.graph_passes.batchnorm_to_thresholds``).
    """
    from codesign.graph_passes import _batchnorm_quant_pairs

    own = {batchnorm.name for _, batchnorm, _ in _batchnorm_quant_pairs(model)}
    for node in model.get_nodes_by_op_type("BatchNormalization"):
        producer = model.find_producer(node.input[0])
        if node.name not in own and producer is not None and producer.op_type in ("Conv", "MatMul", "Add"):
            return True
    return False


def _fraction(value) -> Fraction:
    return Fraction(float(value))


def round_half_even_threshold(level: int, alpha: Fraction, beta: Fraction, scale: Fraction, zero_point: int) -> int:
    """Return the smallest integer A with round_half_even((alpha * A + beta) / scale + zero_point) >= level.

    ``alpha`` and ``scale`` are positive. Round half to even reaches ``level``
    from ``level - 1/2`` upwards when ``level`` is even, and only above it
    when ``level`` is odd.
    """
    boundary = ((Fraction(level) - Fraction(1, 2) - zero_point) * scale - beta) / alpha
    if level % 2 == 0 or boundary.denominator != 1:
        return math.ceil(boundary)
    return int(boundary) + 1


def quant_thresholds(
    alphas: list[Fraction], betas: list[Fraction], params: QuantParams, relu: bool, where: str
) -> tuple[np.ndarray, int]:
    """Return (thresholds, offset): output code = offset + count(A >= thresholds[c, k]).

    The output code is the Quant's clipped integer minus its zero point, for
    the real input ``max(v, 0) if relu else v`` with ``v = alphas[c] * A + betas[c]``.
    """
    scale = np.unique(params.scale)
    zero_point = np.unique(params.zero_point)
    if scale.size != 1 or zero_point.size != 1:
        raise UnsupportedModelError(f"{where}: per-channel activation scales or zero points are not supported")
    if float(zero_point[0]) != round(float(zero_point[0])):
        raise UnsupportedModelError(f"{where}: zero point {zero_point[0]} is not an integer")
    if params.rounding_mode != "ROUND":
        raise UnsupportedModelError(
            f"{where}: rounding mode {params.rounding_mode} is not supported; supported: ROUND (half to even)"
        )
    out_scale = _fraction(scale[0])
    zp = int(round(float(zero_point[0])))
    levels = range(params.code_min + 1, params.code_max + 1)
    thresholds = np.empty((len(alphas), len(levels)), dtype=object)
    for channel, (alpha, beta) in enumerate(zip(alphas, betas)):
        for k, level in enumerate(levels):
            if relu and zp >= level:
                # ReLU outputs 0, whose code zp already reaches this level.
                thresholds[channel, k] = THRESHOLD_ALWAYS
            else:
                value = round_half_even_threshold(level, alpha, beta, out_scale, zp)
                thresholds[channel, k] = min(max(value, THRESHOLD_ALWAYS), THRESHOLD_NEVER)
    return thresholds, params.code_min - zp


def bipolar_thresholds(alphas: list[Fraction], betas: list[Fraction], relu: bool) -> np.ndarray:
    """Return the one threshold per channel of a BipolarQuant: +1 where v = alphas[c] * A + betas[c] >= 0.

    After a ReLU, v >= 0 always holds, so every code is +1.
    """
    thresholds = np.empty((len(alphas), 1), dtype=object)
    for channel, (alpha, beta) in enumerate(zip(alphas, betas)):
        thresholds[channel, 0] = THRESHOLD_ALWAYS if relu else max(math.ceil(-beta / alpha), THRESHOLD_ALWAYS)
    return thresholds


@dataclass
class RescaleConstants:
    """``v_c * 2**exponent = A * multipliers[c] + offsets[c]`` exactly, for the rescale layer."""

    multipliers: list[int]
    offsets: list[int]
    exponent: int
    # Smallest alpha: one accumulator step of the finest channel.
    min_step: Fraction


def rescale_constants(alphas: list[Fraction], betas: list[Fraction], where: str) -> RescaleConstants:
    """Write the affine maps with one common power-of-two denominator."""
    exponent = 0
    for value in alphas + betas:
        denominator = value.denominator
        if denominator & (denominator - 1):
            raise UnsupportedModelError(f"{where}: scale or bias {value} is not a dyadic rational")
        exponent = max(exponent, denominator.bit_length() - 1)
    multipliers = [int(a * (1 << exponent)) for a in alphas]
    offsets = [int(b * (1 << exponent)) for b in betas]
    return RescaleConstants(multipliers, offsets, exponent, min(alphas))


@dataclass
class _Affine:
    """A not yet quantized accumulator tensor: real value ``alpha[c] * A + beta[c]`` (then ReLU if ``relu``)."""

    source: str  # the accumulator tensor (the Conv or MatMul output)
    alphas: list[Fraction]
    betas: list[Fraction]
    relu: bool = False
    removed: list[onnx.NodeProto] = field(default_factory=list)
    layer: str = ""
    # Per-channel accumulator bounds, when the layer's input code range is known.
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    # BatchNormalization and the ReLUs after it, which the threshold replays in the reference's arithmetic.
    float_ops: list[onnx.NodeProto] = field(default_factory=list)
    # The weight codes (initializer names of values and bit width) and their output-channel axis.
    weight_values: str = ""
    weight_bits: str = ""
    weight_axis: int = 0


@dataclass
class ThresholdLowering:
    """Result of the rewrite: the carried scales at the graph's ends, and the quantizers it rewrote."""

    input_scale: float
    output_scale: float | None  # None when the output is rescaled to a fixed type
    output_rescaled: bool
    thresholds: list[str] = field(default_factory=list)


class _Rewriter:
    def __init__(self, model: ModelWrapper):
        self.model = model
        self.graph = model.graph
        self.scales: dict[str, Fraction] = {}
        self.affine: dict[str, _Affine] = {}
        self.remove: list[onnx.NodeProto] = []
        self.add: list[tuple[int, onnx.NodeProto]] = []
        self.thresholds: list[str] = []
        # Integer code range (minimum, maximum) of each code tensor.
        self.ranges: dict[str, tuple[int, int]] = {}

    # ---- constants -------------------------------------------------------

    def _constant_producer(self, tensor: str):
        producer = self.model.find_producer(tensor)
        if producer is not None and producer.op_type in ("Quant", "BipolarQuant"):
            if self.model.get_initializer(producer.input[0]) is not None:
                return producer
        return None

    def _weight_codes(self, tensor: str, channel_axis: int, where: str) -> tuple[np.ndarray, list[Fraction]]:
        """Replace a quantized weight by its codes; return (codes, per-output-channel scales)."""
        producer = self._constant_producer(tensor)
        if producer is None:
            raise UnsupportedModelError(f"{where}: weights must come from a Quant or BipolarQuant on a constant")
        values = self.model.get_initializer(producer.input[0])
        if producer.op_type == "BipolarQuant":
            scale = np.asarray(self.model.get_initializer(producer.input[1]), dtype=np.float32)
            codes = np.where(values >= 0, 1, -1).astype(np.int64)
            bits, signed, narrow = 2, True, True
        else:
            params = quant_params(self.model, producer)
            if np.any(params.zero_point != 0):
                raise UnsupportedModelError(f"node {producer.name!r} (Quant): weight zero points are not supported")
            scale = params.scale
            codes = params.quantize_codes(values)
            bits, signed, narrow = int(params.bit_width), params.signed, params.narrow
        full = np.broadcast_to(np.asarray(scale, dtype=np.float32), codes.shape)
        moved = np.moveaxis(full, channel_axis, 0).reshape(codes.shape[channel_axis], -1)
        if not np.all(moved == moved[:, :1]):
            raise UnsupportedModelError(
                f"node {producer.name!r} ({producer.op_type}): weight scales vary within an output channel"
            )
        scales = [_fraction(s) for s in moved[:, 0]]
        self._replace_with_codes(producer, codes, bits, signed, narrow)
        return codes, scales

    def _replace_with_codes(self, producer, codes, bits: int, signed: bool, narrow: bool) -> None:
        """Turn a constant quantizer into Quant(codes, scale 1, zero point 0) so hls4ml types it as integers."""
        prefix = f"{producer.name or producer.output[0]}_codes"
        names = [f"{prefix}_{key}" for key in ("values", "scale", "zero_point", "bits")]
        self.model.set_initializer(names[0], codes.astype(np.float32))
        self.model.set_initializer(names[1], np.float32(1.0))
        self.model.set_initializer(names[2], np.float32(0.0))
        self.model.set_initializer(names[3], np.float32(bits))
        node = helper.make_node(
            "Quant", names, [producer.output[0]], name=producer.name, domain="qonnx.custom_op.general",
            signed=int(signed), narrow=int(narrow), rounding_mode="ROUND",
        )
        index = list(self.graph.node).index(producer)
        self.graph.node.remove(producer)
        self.graph.node.insert(index, node)

    def _bias(self, tensor: str, count: int, where: str) -> list[Fraction]:
        producer = self._constant_producer(tensor)
        if producer is not None and producer.op_type == "Quant":
            params = quant_params(self.model, producer)
            codes = params.quantize_codes(self.model.get_initializer(producer.input[0]))
            scale = np.broadcast_to(params.scale, codes.shape).ravel()
            zero = np.broadcast_to(params.zero_point, codes.shape).ravel()
            if np.any(zero != 0):
                raise UnsupportedModelError(f"node {producer.name!r} (Quant): bias zero points are not supported")
            values = [int(c) * _fraction(s) for c, s in zip(codes.ravel(), scale)]
        else:
            constant = self.model.get_initializer(tensor)
            if constant is None:
                raise UnsupportedModelError(f"{where}: the bias is not a constant")
            values = [_fraction(v) for v in np.asarray(constant, dtype=np.float32).ravel()]
        if len(values) == 1:
            values = values * count
        if len(values) != count:
            raise UnsupportedModelError(f"{where}: bias has {len(values)} values for {count} output channels")
        return values

    # ---- rewrite ---------------------------------------------------------

    def input_quantizer(self, node) -> None:
        params = quant_params(self.model, node)
        scale = np.unique(params.scale)
        if scale.size != 1 or np.any(params.zero_point != 0):
            raise UnsupportedModelError(
                f"node {node.name!r} (Quant): the input quantizer needs one scale and zero point 0"
            )
        name = f"{node.name or node.output[0]}_unit_scale"
        self.model.set_initializer(name, np.float32(1.0))
        node.input[1] = name
        self.scales[node.output[0]] = _fraction(scale[0])
        self.ranges[node.output[0]] = (params.code_min, params.code_max)

    def accumulate(self, node) -> None:
        """Turn a Conv or MatMul into an integer accumulator and record its exact affine map and code range."""
        where = f"node {node.name!r} ({node.op_type})"
        source = node.input[0]
        if source not in self.scales:
            raise UnsupportedModelError(f"{where}: its input is not a quantized tensor (add a quantizer before it)")
        if node.op_type == "Conv":
            groups = [onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "group"]
            if groups and groups[0] != 1:
                raise UnsupportedModelError(f"{where}: grouped convolutions are not supported with float scales")
            axis = 0
        else:
            axis = 1

        codes, weight_scales = self._weight_codes(node.input[1], axis, where)
        g = self.scales[source]
        alphas = [g * s for s in weight_scales]
        betas = [Fraction(0)] * len(alphas)
        affine = _Affine(source=node.output[0], alphas=alphas, betas=betas, layer=node.name)
        if node.op_type == "Conv" and len(node.input) > 2 and node.input[2]:
            affine.betas = self._bias(node.input[2], len(alphas), where)
            del node.input[2]

        prefix = f"{self.model.find_producer(node.input[1]).name or node.input[1]}_codes"
        affine.weight_values, affine.weight_bits, affine.weight_axis = f"{prefix}_values", f"{prefix}_bits", axis

        if source in self.ranges:
            low, high = self.ranges[source]
            if node.op_type == "Conv":
                # Zero padding feeds code 0.
                low, high = min(low, 0), max(high, 0)
            per_channel = np.moveaxis(codes, axis, 0).reshape(codes.shape[axis], -1)
            positive = np.where(per_channel > 0, per_channel, 0).sum(axis=1)
            negative = np.where(per_channel < 0, per_channel, 0).sum(axis=1)
            affine.low = positive * low + negative * high
            affine.high = positive * high + negative * low
        self.affine[node.output[0]] = affine

    def batchnorm(self, node, affine: _Affine) -> None:
        """Keep a BatchNormalization after a layer for the threshold that follows, which replays it."""
        where = f"node {node.name!r} (BatchNormalization)"
        producer = self.model.find_producer(affine.source)
        if affine.relu or affine.float_ops or producer is None or producer.op_type not in ("Conv", "MatMul"):
            raise UnsupportedModelError(f"{where}: a batch normalization must follow a convolution or dense layer "
                                        "(and its bias) directly")
        if affine.low is None:
            raise UnsupportedModelError(f"{where}: the code range of the layer's input is unknown")
        self.affine[node.output[0]] = _Affine(
            affine.source, affine.alphas, affine.betas, False, affine.removed + [node], affine.layer,
            affine.low, affine.high, [node], affine.weight_values, affine.weight_bits, affine.weight_axis,
        )

    def add_bias(self, node, affine: _Affine, bias_input: str) -> None:
        where = f"node {node.name!r} (Add)"
        if affine.float_ops:
            raise UnsupportedModelError(f"{where}: an addition after a batch normalization is not supported; "
                                        "a quantizer must follow the batch normalization, optionally after a ReLU")
        if affine.relu:
            raise UnsupportedModelError(f"{where}: a bias after a ReLU is not supported with float scales")
        bias = self._bias(bias_input, len(affine.alphas), where)
        affine.betas = [b + c for b, c in zip(affine.betas, bias)]
        affine.removed.append(node)
        self.affine[node.output[0]] = affine

    def threshold(self, node, affine: _Affine) -> None:
        where = f"node {node.name!r} ({node.op_type})"
        step = 1
        if affine.float_ops:
            self.replayed_threshold(node, affine)
            return
        if node.op_type == "BipolarQuant":
            scale = np.unique(np.asarray(self.model.get_initializer(node.input[1]), dtype=np.float32))
            if scale.size != 1:
                raise UnsupportedModelError(f"{where}: per-channel bipolar scales are not supported")
            thresholds = bipolar_thresholds(affine.alphas, affine.betas, affine.relu)
            offset, out_min, out_max, step = -1, -1, 1, 2
        else:
            params = quant_params(self.model, node)
            scale = np.unique(params.scale)
            thresholds, offset = quant_thresholds(affine.alphas, affine.betas, params, affine.relu, where)
            out_min = params.code_min - int(round(float(np.unique(params.zero_point)[0])))
            out_max = params.code_max - int(round(float(np.unique(params.zero_point)[0])))
        replacement = helper.make_node(
            THRESHOLD_OP, [affine.source], [node.output[0]], name=node.name, domain=DOMAIN,
            thresholds=onnx.numpy_helper.from_array(np.asarray(thresholds.tolist(), dtype=np.int64)),
            offset=int(offset), out_min=int(out_min), out_max=int(out_max), step=step,
            carried_scale=float(scale[0]),
        )
        self._replace(node, affine, replacement)
        self.scales[node.output[0]] = _fraction(scale[0])
        self.ranges[node.output[0]] = (out_min, out_max)
        self.thresholds.append(node.name)

    def replayed_threshold(self, node, affine: _Affine) -> None:
        """Lower BatchNormalization -> [Relu] -> Quant to thresholds computed by the reference's arithmetic."""
        from codesign.batchnorm import ReplayedQuantizer, replayed_thresholds

        where = f"node {node.name!r} ({node.op_type})"
        if node.op_type != "Quant":
            raise UnsupportedModelError(f"{where}: only a Quant may follow a batch normalization")
        params = quant_params(self.model, node)
        if np.unique(params.scale).size != 1 or np.unique(params.zero_point).size != 1:
            raise UnsupportedModelError(f"{where}: per-channel activation scales or zero points are not supported")
        zero_point = int(round(float(np.unique(params.zero_point)[0])))
        rank = len(self.model.get_tensor_shape(affine.source))
        replay = ReplayedQuantizer(self.model, affine.float_ops, node, params, affine.alphas, affine.betas, rank)
        out_min, out_max = params.code_min - zero_point, params.code_max - zero_point
        levels = range(out_min + 1, out_max + 1)
        thresholds, falling = replayed_thresholds(replay, affine.low, affine.high, levels, where)
        if np.any(falling):
            self._negate_weights(affine, falling, where)
        thresholds = np.clip(thresholds, THRESHOLD_ALWAYS, THRESHOLD_NEVER)
        replacement = helper.make_node(
            THRESHOLD_OP, [affine.source], [node.output[0]], name=node.name, domain=DOMAIN,
            thresholds=onnx.numpy_helper.from_array(thresholds.astype(np.int64)),
            offset=out_min, out_min=out_min, out_max=out_max, step=1,
            carried_scale=float(np.unique(params.scale)[0]),
        )
        self._replace(node, affine, replacement)
        self.scales[node.output[0]] = _fraction(np.unique(params.scale)[0])
        self.ranges[node.output[0]] = (out_min, out_max)
        self.thresholds.append(node.name)
        log.info("%s: batch normalization lowered to %d thresholds per channel (%d channels with negated weights)",
                 node.name, len(levels), int(np.sum(falling)))

    def _negate_weights(self, affine: _Affine, channels: np.ndarray, where: str) -> None:
        """Negate the weight codes of the given output channels, widening the weight type by one bit if needed."""
        codes = np.asarray(self.model.get_initializer(affine.weight_values))
        moved = np.moveaxis(codes, affine.weight_axis, 0).copy()
        moved[channels] = -moved[channels]
        producer = self.model.find_producer(affine.source)
        if len(self.model.find_consumers(producer.input[1])) != 1:
            raise UnsupportedModelError(f"{where}: the layer's weights are shared with another node")
        quantizer = self.model.find_producer(producer.input[1])
        signed = any(a.name == "signed" and a.i == 1 for a in quantizer.attribute)
        if not signed:
            raise UnsupportedModelError(f"{where}: a falling batch normalization needs signed weights")
        bits = int(self.model.get_initializer(affine.weight_bits))
        if moved.min() < -(1 << (bits - 1)) or moved.max() > (1 << (bits - 1)) - 1:
            self.model.set_initializer(affine.weight_bits, np.float32(bits + 1))
        self.model.set_initializer(affine.weight_values, np.moveaxis(moved, 0, affine.weight_axis).astype(np.float32))

    def rescale(self, output: str, affine: _Affine) -> None:
        if affine.float_ops:
            raise UnsupportedModelError(
                f"node {affine.float_ops[0].name!r} (BatchNormalization): a batch normalization needs a quantizer "
                "after it (optionally after a ReLU) for exact lowering, because its float scale "
                "gamma / sqrt(var + eps) makes the float32 reference round"
            )
        constants = rescale_constants(affine.alphas, affine.betas, f"node {affine.layer!r}")
        producer = self.model.find_producer(output)
        replacement = helper.make_node(
            RESCALE_OP, [affine.source], [output], name=f"{affine.layer}_rescale", domain=DOMAIN,
            multipliers=[str(m).encode() for m in constants.multipliers],
            offsets=[str(b).encode() for b in constants.offsets],
            exponent=constants.exponent, relu=int(affine.relu),
            min_step=str(constants.min_step).encode(),
        )
        if producer.output[0] == affine.source:
            # The accumulator itself is the graph output: give it a new name first.
            renamed = f"{affine.source}_accumulator"
            producer.output[0] = renamed
            replacement.input[0] = renamed
            shape = self.model.get_tensor_shape(output)
            self.model.set_tensor_shape(renamed, shape)
            self.graph.node.insert(list(self.graph.node).index(producer) + 1, replacement)
        else:
            self._replace(producer, affine, replacement)

    def _replace(self, node, affine: _Affine, replacement) -> None:
        index = list(self.graph.node).index(node)
        self.graph.node.insert(index, replacement)
        self.graph.node.remove(node)
        for removed in affine.removed:
            if removed is not node:
                self.graph.node.remove(removed)

    def run(self) -> ThresholdLowering:
        input_name = self.graph.input[0].name
        for node in list(self.graph.node):
            where = f"node {node.name!r} ({node.op_type})"
            op = node.op_type
            if op in ("Quant", "BipolarQuant") and self.model.get_initializer(node.input[0]) is not None:
                continue  # constants: handled by the layer that reads them
            source = node.input[0] if node.input else ""
            if op == "Quant" and source == input_name:
                self.input_quantizer(node)
            elif op == "BipolarQuant" and source == input_name:
                raise UnsupportedModelError(f"{where}: a bipolar input quantizer is not supported; use Quant")
            elif op in ("Conv", "MatMul"):
                self.accumulate(node)
            elif op in ("Quant", "BipolarQuant") and source in self.affine:
                self.threshold(node, self.affine[source])
            elif op in ("Quant", "BipolarQuant") and source in self.scales:
                # A requantization of codes: the accumulator is the code tensor itself.
                count = self.model.get_tensor_shape(source)[-1]
                affine = _Affine(source=source, alphas=[self.scales[source]] * count, betas=[Fraction(0)] * count,
                                 layer=node.name)
                self.threshold(node, affine)
            elif op == "BatchNormalization" and source in self.affine:
                self.batchnorm(node, self.affine[source])
            elif op == "Relu" and source in self.affine and self.affine[source].float_ops:
                affine = self.affine[source]
                self.affine[node.output[0]] = _Affine(
                    affine.source, affine.alphas, affine.betas, False, affine.removed + [node], affine.layer,
                    affine.low, affine.high, affine.float_ops + [node], affine.weight_values, affine.weight_bits,
                    affine.weight_axis,
                )
            elif op == "Relu" and source in self.affine:
                affine = self.affine[source]
                self.affine[node.output[0]] = _Affine(affine.source, affine.alphas, affine.betas, True,
                                                      affine.removed + [node], affine.layer, affine.low, affine.high)
            elif op == "Add" and source in self.affine and len(node.input) == 2:
                self.add_bias(node, self.affine[source], node.input[1])
            elif op == "Add" and node.input[1] in self.affine:
                self.add_bias(node, self.affine[node.input[1]], node.input[0])
            elif op in ("Relu", *_PASS_THROUGH) and source in self.scales:
                self.scales[node.output[0]] = self.scales[source]
                if source in self.ranges:
                    low, high = self.ranges[source]
                    self.ranges[node.output[0]] = (max(low, 0), max(high, 0)) if op == "Relu" else (low, high)
            elif op == "MaxPool" and source in self.affine and self.affine[source].float_ops:
                raise UnsupportedModelError(f"{where}: max pooling after a batch normalization is not supported; "
                                            "put it after the quantizer")
            elif op == "MaxPool" and source in self.affine:
                # The bias Add and ReLU map each channel by an increasing function, which commutes with
                # max, so the pooling moves onto the accumulator and they stay in the affine map.
                affine = self.affine[source]
                node.input[0] = affine.source
                for removed in affine.removed:
                    self.graph.node.remove(removed)
                self.affine[node.output[0]] = _Affine(node.output[0], affine.alphas, affine.betas, affine.relu, [],
                                                      affine.layer)
            elif source in self.scales or source in self.affine:
                raise UnsupportedModelError(
                    f"{where}: not supported after a layer with float scales, zero points, bipolar weights or "
                    "batch normalization"
                )
        output = self.graph.output[0].name
        if output in self.affine:
            self.rescale(output, self.affine[output])
            return ThresholdLowering(float(self._input_scale()), None, True, self.thresholds)
        if output not in self.scales:
            raise UnsupportedModelError(f"graph output {output!r} is not a quantized tensor")
        return ThresholdLowering(float(self._input_scale()), float(self.scales[output]), False, self.thresholds)

    def _input_scale(self) -> Fraction:
        consumer = self.model.find_consumers(self.graph.input[0].name)[0]
        return self.scales[consumer.output[0]]


def lower_float_scales(model: ModelWrapper) -> tuple[ModelWrapper, ThresholdLowering]:
    """Return a rewritten copy of a channels-last model in which every tensor is an integer code tensor.

    Raises UnsupportedModelError naming the node for patterns the rewrite cannot express exactly.
    """
    model = ModelWrapper(onnx.ModelProto.FromString(model.model.SerializeToString()))
    lowering = _Rewriter(model).run()
    # The biases now live in beta. hls4ml would make their unused quantizers layers without consumers.
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    for node in list(model.graph.node):
        if node.op_type == "Quant" and model.get_initializer(node.input[0]) is not None and node.output[0] not in used:
            model.graph.node.remove(node)
    # hls4ml turns every initializer into a Constant layer, which must have a consumer.
    used = {name for node in model.graph.node for name in node.input}
    for initializer in list(model.graph.initializer):
        if initializer.name not in used:
            model.graph.initializer.remove(initializer)
    log.info("lowered %d quantizers to integer thresholds", len(lowering.thresholds))
    return model, lowering


# csim accepts this difference between a rescaled output and the float32
# reference: 0.5 LSB from rounding the exact value to the nearest, plus the
# reference's own float32 rounding.
# NOTE: the margin for the float32 reference is not a proven bound; the
# output width cap (20 bits) keeps its per-operation rounding near 2**-5 LSB.
RESCALED_OUTPUT_BOUND_LSB = 1.0


def output_meta(lowering: ThresholdLowering | None) -> dict:
    """Return the codesign.json output entries that csim needs to compare the design's outputs with the reference.

    ``scale``: the outputs are quantizer codes, and the reference's values
    divided by it are those codes. ``error_bound_lsb``: the outputs are the
    nearest values of their fixed type, within that many LSBs of the reference.
    """
    if lowering is None:
        return {}
    if lowering.output_rescaled:
        return {"error_bound_lsb": RESCALED_OUTPUT_BOUND_LSB}
    return {"scale": lowering.output_scale}


def scale_to_codes(values: np.ndarray, scale: float) -> np.ndarray:
    """Divide reference values by a carried scale and snap to the integer codes they stand for.

    The float32 reference stores ``code * scale`` rounded, so the quotient is
    within about 2**-24 * |code| of the code. Values further than 2**-10 from
    an integer are left as they are, so that csim reports them as mismatches.
    """
    quotient = np.asarray(values, dtype=np.float64) / scale
    codes = np.rint(quotient)
    return np.where(np.abs(quotient - codes) <= 2.0**-10, codes, quotient)


def precision_notes(lowering: ThresholdLowering | None) -> str:
    """Return Markdown that explains the carried scales under the precision table, or '' without lowering."""
    if lowering is None:
        return ""
    lines = [
        "",
        "## Float scales",
        "",
        f"Float scales, zero points, bipolar weights or batch normalization: {len(lowering.thresholds)} "
        "quantizers are integer "
        "thresholds on integer accumulators, so every tensor after the input is an integer code and its scale "
        "is carried in the thresholds of the next quantizer.",
        f"The design reads the input quantizer's codes (real value = code * {lowering.input_scale:.8g}).",
    ]
    if lowering.output_rescaled:
        lines.append(
            "The output has no quantizer: it is the nearest value of the output type (round half to even) of the "
            f"exact output, and csim accepts at most {RESCALED_OUTPUT_BOUND_LSB:g} LSB of difference from the "
            "float32 reference."
        )
    else:
        lines.append(f"The outputs are codes: real value = code * {lowering.output_scale:.8g}.")
    return "\n".join(lines) + "\n"

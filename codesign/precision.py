"""Precision inference: exact C++ types from interval analysis (an analysis, not a rewrite).

Every tensor of the lowered model is a fixed-point number ``code * 2**-F``.
Walking the hls4ml graph in order, this module tracks for each tensor the
interval of its integer codes and its fractional bits F, and derives the
narrowest type that contains every value the tensor can take:

- input: the input quantizer's type; the host feeds exact codes;
- quantizer activations (QONNX ``Quant`` lowered by hls4ml, possibly merged
  with a ReLU): hls4ml's type already equals the quantizer's (width, LSB,
  round half to even via ``AP_RND_CONV``, saturation, ``AP_SAT_SYM`` for
  narrow range); the interval is that type's range clipped to the input's;
- zero padding and max pooling: the input type, with 0 added for padding;
- convolution and dense: the product LSB is ``F_in + F_w`` (the bias LSB is
  checked to be no finer), and the interval of each output channel is summed
  from the real weights and bias. The accumulator wraps (``AP_WRAP``), so
  partial sums may leave the range without harm: arithmetic is modulo 2**W and
  the final sum is inside it.

- depthwise convolution: as convolution, with each output channel summed
  over its own kernel taps;
- LeakyReLU: alpha must be a binary fraction ``a * 2**-Fa`` whose product with
  every input code fits float32's 24-bit significand (else the float32
  reference rounds and the model is rejected); alpha's type contains ``a``
  exactly and the output has ``F_in + Fa`` fractional bits, or the type of a
  Quant that hls4ml merged into the layer;
- stream clones, reshapes and nearest resize: the input type (the C++ copies);
- concatenation and two-input add: both inputs at the finer LSB, which is an
  exact left shift; the add's interval is the sum of both;
- average pooling (windowed or global, no padding): ``accum_t`` gets extra
  fractional bits so that the C++'s ``sum / count``, whose quotient keeps the
  dividend's fractional bits, is exact for a power-of-two window, and
  otherwise close enough that the Quant which must follow rounds it as it
  rounds the reference's average (see ``_average_interval``);
- BatchNormalization that reaches hls4ml as its own layer is rejected: its
  float scale ``gamma / sqrt(var + eps)`` is in general no binary fraction,
  and the float32 reference rounds it. A Conv or MatMul ->
  BatchNormalization -> [Relu] -> Quant chain becomes integer thresholds
  before this analysis (``codesign.batchnorm``, ``codesign.graph_passes``).

No layer rounds or saturates except where the reference quantizes, so the
C++ computes the reference's values exactly.
"""

from __future__ import annotations

import copy
import math
from fractions import Fraction
from dataclasses import dataclass

import numpy as np
from hls4ml.model.types import FixedPrecisionType, RoundingMode, SaturationMode

from codesign.errors import UnsupportedModelError

# float32 represents every integer up to 2**24 exactly; wider accumulators
# may make the float reference itself round.
FLOAT32_EXACT_BITS = 24

# Precision rules of extension layers, by hls4ml class name (see codesign.hls_ext):
# rule(layer, input intervals, record) sets the layer's types and returns its output interval.
LAYER_RULES: dict = {}


@dataclass(frozen=True)
class Interval:
    """Integer codes ``lo..hi`` of a tensor whose value is ``code * 2**-frac``."""

    lo: int
    hi: int
    frac: int

    def rescale(self, frac: int) -> "Interval":
        shift = frac - self.frac
        if shift < 0:
            raise ValueError("rescaling to fewer fractional bits would round")
        return Interval(self.lo << shift, self.hi << shift, frac)

    def value_range(self) -> tuple[float, float]:
        return math.ldexp(self.lo, -self.frac), math.ldexp(self.hi, -self.frac)


@dataclass(frozen=True)
class PrecisionEntry:
    """One row of the precision table."""

    layer: str
    tensor: str
    type: str
    interval: Interval
    reason: str


def _bits_for(interval: Interval, signed: bool) -> int:
    """Return the narrowest width that contains lo..hi in two's complement (or unsigned)."""
    width = 1
    while True:
        low = -(1 << (width - 1)) if signed else 0
        high = (1 << (width - 1)) - 1 if signed else (1 << width) - 1
        if low <= interval.lo and interval.hi <= high:
            return width
        width += 1


def exact_type(interval: Interval, signed: bool | None = None) -> FixedPrecisionType:
    """Return the narrowest truncating, wrapping fixed type that contains the interval exactly."""
    if signed is None:
        signed = interval.lo < 0
    width = _bits_for(interval, signed)
    return FixedPrecisionType(width=width, integer=width - interval.frac, signed=signed)


def type_interval(precision: FixedPrecisionType) -> Interval:
    """Return the codes a fixed type can hold, honouring symmetric saturation."""
    frac = precision.width - precision.integer
    if precision.signed:
        lo, hi = -(1 << (precision.width - 1)), (1 << (precision.width - 1)) - 1
        if precision.saturation_mode == SaturationMode.SAT_SYM:
            lo = -hi
    else:
        lo, hi = 0, (1 << precision.width) - 1
    return Interval(lo, hi, frac)


def _codes(values: np.ndarray, precision: FixedPrecisionType, where: str) -> np.ndarray:
    """Return the integer codes of constant values, checking they fit their type exactly."""
    frac = precision.width - precision.integer
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), frac)
    codes = np.rint(scaled)
    if not np.array_equal(codes, scaled):
        raise UnsupportedModelError(f"{where}: constant values are not multiples of the type's LSB {precision}")
    limits = type_interval(precision)
    if codes.min(initial=0) < limits.lo or codes.max(initial=0) > limits.hi:
        raise UnsupportedModelError(f"{where}: constant values exceed the range of {precision}")
    return codes.astype(np.int64)


def _assign(named_type, precision: FixedPrecisionType) -> None:
    """Give an hls4ml type a new fixed precision, keeping the backend's C++ definition class.

    hls4ml may share one precision object between several types (a
    concatenation's result and its input's), so the type gets a copy.
    """
    target = named_type.precision
    if not isinstance(target, FixedPrecisionType):
        raise UnsupportedModelError(f"type {named_type.name} is {target}, not fixed-point")
    target = copy.copy(target)
    named_type.precision = target
    target.width = precision.width
    target.integer = precision.integer
    target.signed = precision.signed
    target.rounding_mode = precision.rounding_mode
    target.saturation_mode = precision.saturation_mode
    target.saturation_bits = precision.saturation_bits


def _precision_of(layer) -> FixedPrecisionType:
    precision = layer.get_output_variable().type.precision
    if not isinstance(precision, FixedPrecisionType):
        raise UnsupportedModelError(f"layer {layer.name!r} ({layer.class_name}): output type {precision} is not fixed-point")
    return precision


def _matmul_interval(layer, weights: np.ndarray, bias: np.ndarray | None, source: Interval) -> tuple[Interval, str]:
    """Return the accumulator interval of a convolution or dense layer.

    ``weights`` contains integer codes with the output channel as the last axis.
    """
    weight_precision = layer.weights["weight"].type.precision
    frac = source.frac + (weight_precision.width - weight_precision.integer)
    flat = weights.reshape(-1, weights.shape[-1]).astype(object)
    positive = np.where(flat > 0, flat, 0).sum(axis=0)
    negative = np.where(flat < 0, flat, 0).sum(axis=0)
    hi = positive * source.hi + negative * source.lo
    lo = positive * source.lo + negative * source.hi
    reason = f"sum of {flat.shape[0]} products of real weights and input interval"
    if bias is not None:
        bias_precision = layer.weights["bias"].type.precision
        bias_frac = bias_precision.width - bias_precision.integer
        if bias_frac > frac:
            raise UnsupportedModelError(
                f"layer {layer.name!r} ({layer.class_name}): bias LSB 2^-{bias_frac} is finer than the "
                f"product LSB 2^-{frac}; quantize the bias with scale = input scale * weight scale"
            )
        shifted = bias.astype(object) * (1 << (frac - bias_frac))
        hi = hi + shifted
        lo = lo + shifted
        reason += " plus bias"
    return Interval(int(min(lo)), int(max(hi)), frac), reason


def _quantized_interval(source: Interval, precision: FixedPrecisionType, relu: bool) -> Interval:
    """Return the codes of a quantizer's output type for an input interval, optionally after a ReLU."""
    limits = type_interval(precision)
    shift = limits.frac - source.frac
    if shift >= 0:
        lo, hi = source.lo << shift, source.hi << shift
    else:
        lo, hi = source.lo >> -shift, -((-source.hi) >> -shift)
    if relu:
        lo, hi = max(lo, 0), max(hi, 0)
    return Interval(max(limits.lo, lo), min(limits.hi, hi), limits.frac)


def _dyadic(value: float, where: str) -> tuple[int, int]:
    """Return (code, frac) with ``value == code * 2**-frac`` and the smallest frac >= 0."""
    fraction = Fraction(value)
    frac = fraction.denominator.bit_length() - 1
    if fraction.denominator != 1 << frac:
        raise UnsupportedModelError(f"{where}: {value!r} is not a binary fraction")
    return int(fraction * (1 << frac)), frac


def _leaky_relu_interval(layer, source: Interval) -> tuple[Interval, Interval, FixedPrecisionType, str]:
    """Return the output interval, alpha's code and alpha's type of hls4ml's ``leaky_relu``: x > 0 ? x : alpha * x.

    The C++ multiplies the input by alpha held in ``param_t`` at full product
    precision, so the output needs the fractional bits of both. The float32
    reference computes ``alpha * x`` exactly only while the product's integer
    code fits float32's 24-bit significand; beyond that the model is rejected.
    """
    alpha = float(layer.get_attr("activ_param"))
    where = f"layer {layer.name!r} (LeakyReLU) alpha"
    code, alpha_frac = _dyadic(alpha, where)
    largest = max(abs(source.lo), abs(source.hi)) * abs(code)
    if largest >= 1 << FLOAT32_EXACT_BITS:
        raise UnsupportedModelError(
            f"{where} {alpha!r} = {code} * 2^-{alpha_frac}: alpha * x needs up to {largest.bit_length()} significant "
            f"bits, so the float32 reference rounds it; use an alpha with fewer bits (e.g. 0.125 or 13/128)"
        )
    param = exact_type(Interval(code, code, alpha_frac))
    positive = (max(source.lo, 0) << alpha_frac, max(source.hi, 0) << alpha_frac)
    negative = (min(source.lo, 0) * code, min(source.hi, 0) * code)
    values = (*positive, *negative)
    interval = Interval(min(values), max(values), source.frac + alpha_frac)
    reason = f"x or alpha * x with alpha {alpha!r} = {code} * 2^-{alpha_frac}, exact"
    return interval, Interval(code, code, alpha_frac), param, reason


def _aligned(sources: list[Interval]) -> list[Interval]:
    """Rescale intervals to the finest LSB among them; shifting left is exact."""
    frac = max(source.frac for source in sources)
    return [source.rescale(frac) for source in sources]


def _depthwise_columns(layer, weights: np.ndarray) -> np.ndarray:
    """Return depthwise weights as (kernel taps, output channels) so each column sums one channel.

    hls4ml 1.3.0 stores them as (kernel height, kernel width, 1, channels);
    that layout was checked for a depth multiplier of 1 only, so other
    multipliers raise UnsupportedModelError.
    """
    multiplier = layer.get_attr("depth_multiplier", 1)
    channels = layer.get_attr("n_chan")
    if multiplier != 1 or weights.shape[-1] != channels:
        raise UnsupportedModelError(
            f"layer {layer.name!r} ({layer.class_name}): depth multiplier {multiplier} (weights {weights.shape}) "
            "is not supported; supported: one output channel per input channel"
        )
    return weights.reshape(-1, channels)


def _following_quantizer(hls_model, layer) -> FixedPrecisionType | None:
    """Return the type of the quantizer layer that alone reads this layer's output, or None."""
    readers = [other for other in hls_model.get_layers() if layer.outputs[0] in other.inputs]
    if len(readers) != 1 or readers[0].class_name != "Activation" or readers[0].get_attr("quantizer") is None:
        return None
    return _precision_of(readers[0])


def _average_interval(layer, source: Interval, quantizer: FixedPrecisionType | None) -> tuple[Interval, Interval, str]:
    """Return the accumulator and output intervals of hls4ml's average pooling.

    The C++ (``nnet_pooling_stream.h``, hls4ml 1.3.0) converts each input to
    ``accum_t``, sums in ``accum_t`` and divides by the window size N. An
    ``ap_fixed`` quotient keeps the dividend's fractional bits and truncates
    the rest, so ``accum_t`` gets g extra fractional bits:

    - N = 2**k: g = k, and the quotient is exact.
    - other N: the quotient is rounded by the quantizer that must read it
      (Fq fractional bits). An inexact quotient S / (N * 2**F_in) lies at least
      1 / (N * 2**(F_in + Fq + 1)) from every rounding tie, so with
      g = Fq + 1 + ceil(log2 N) + 1 the truncation never reaches or crosses a
      tie and the quantizer rounds it as it rounds the exact quotient. The
      float32 reference's own error (sum / N, at most 2 ulp) must stay below
      that distance too, which bounds the sum's code to 2**(22 - Fq).
    """
    where = f"layer {layer.name!r} ({layer.class_name})"
    if layer.class_name == "GlobalPooling2D":
        count = layer.get_attr("in_height") * layer.get_attr("in_width")
    else:
        count = layer.get_attr("pool_height") * layer.get_attr("pool_width")
        pads = [layer.get_attr(f"pad_{side}", 0) for side in ("top", "bottom", "left", "right")]
        if any(pads):
            raise UnsupportedModelError(f"{where}: padding {pads} is not supported; hls4ml's streaming pooling has no padding")
    total = Interval(count * source.lo, count * source.hi, source.frac)
    largest = max(abs(total.lo), abs(total.hi))
    if largest >= 1 << FLOAT32_EXACT_BITS:
        raise UnsupportedModelError(
            f"{where}: the sum of {count} values needs more than {FLOAT32_EXACT_BITS} bits, so the float32 reference rounds it"
        )
    shift = count.bit_length() - 1
    if count == 1 << shift:
        reason = f"sum of {count} inputs with {shift} extra fractional bits for the division by {count}"
    else:
        if quantizer is None:
            raise UnsupportedModelError(
                f"{where}: quantizer missing after the average of {count} values, which is not a binary fraction; "
                "add a QuantIdentity that alone reads the pooling's output"
            )
        quant_frac = quantizer.width - quantizer.integer
        if quant_frac >= 22 or largest >= 1 << (22 - quant_frac):
            raise UnsupportedModelError(
                f"{where}: the sum of {count} values (up to {largest.bit_length()} bits) is too wide for the float32 "
                f"reference to round its average like the following quantizer with 2^-{quant_frac} steps"
            )
        shift = max(quant_frac + 1, 0) + (count - 1).bit_length() + 1
        reason = (f"sum of {count} inputs with {shift} extra fractional bits: the truncated quotient rounds "
                  f"like the exact one in the following quantizer")
    accum = total.rescale(source.frac + shift)
    # The quotient lies between the input's bounds, held with the accumulator's fractional bits.
    interval = Interval(source.lo << shift, source.hi << shift, source.frac + shift)
    return accum, interval, reason


def infer_precision(hls_model) -> list[PrecisionEntry]:
    """Set every type of an hls4ml model to its exact width; return the precision table."""
    table: list[PrecisionEntry] = []
    intervals: dict[str, Interval] = {}

    def record(layer, tensor, precision, interval, reason):
        table.append(PrecisionEntry(layer.name, tensor, str(precision), interval, reason))

    for layer in hls_model.get_layers():
        kind = layer.class_name
        inputs = [intervals[name] for name in layer.inputs if name in intervals]
        output = layer.get_output_variable()

        if kind == "Input":
            precision = _precision_of(layer)
            interval = type_interval(precision)
            record(layer, "input", precision, interval, "input quantizer type; the host feeds exact codes")

        elif kind == "Activation" and layer.get_attr("quantizer") is not None:
            precision = _precision_of(layer)
            relu = layer.get_attr("activation", "").lower() == "relu"
            interval = _quantized_interval(inputs[0], precision, relu)
            record(layer, "result", precision, interval, "quantizer type: round half to even, saturate")

        elif kind == "Activation" and layer.get_attr("activation", "").lower() in ("linear", "relu"):
            interval = inputs[0]
            if layer.get_attr("activation").lower() == "relu":
                interval = Interval(max(interval.lo, 0), max(interval.hi, 0), interval.frac)
            precision = exact_type(interval)
            _assign(output.type, precision)
            record(layer, "result", precision, interval, f"{layer.get_attr('activation')} of the input, exact")

        elif kind in ("ZeroPadding1D", "ZeroPadding2D"):
            source = inputs[0]
            interval = Interval(min(source.lo, 0), max(source.hi, 0), source.frac)
            precision = layer.get_input_variable().type.precision
            _assign(output.type, precision)
            record(layer, "result", precision, interval, "input type; padding adds zeros")

        elif kind in ("Pooling1D", "Pooling2D") and layer.get_attr("pool_op", "Max") == "Max":
            interval = inputs[0]
            precision = layer.get_input_variable().type.precision
            _assign(output.type, precision)
            _assign(layer.types["accum_t"], precision)
            record(layer, "result", precision, interval, "max pooling keeps the input type")

        elif kind in ("Conv1D", "Conv2D", "PointwiseConv1D", "PointwiseConv2D", "DepthwiseConv1D", "DepthwiseConv2D", "Dense"):
            weight_var = layer.weights["weight"]
            weights = _codes(weight_var.data, weight_var.type.precision, f"layer {layer.name!r} weights")
            bias = None
            if "bias" in layer.weights and layer.weights["bias"].data is not None:
                bias_var = layer.weights["bias"]
                bias = _codes(bias_var.data, bias_var.type.precision, f"layer {layer.name!r} bias").ravel()
                if not bias.any():
                    # An all-zero bias (hls4ml's default for a MatMul without one) adds nothing.
                    bias = None
            record(layer, "weight", weight_var.type.precision, Interval(int(weights.min()), int(weights.max()),
                   weight_var.type.precision.width - weight_var.type.precision.integer), "weight quantizer type")
            if bias is not None:
                record(layer, "bias", layer.weights["bias"].type.precision,
                       Interval(int(bias.min()), int(bias.max()), bias_var.type.precision.width - bias_var.type.precision.integer),
                       "bias quantizer type")
            # Constants are written as decimal text; round-to-nearest reads them back exactly.
            weight_var.type.precision.rounding_mode = RoundingMode.RND_CONV
            if bias is not None:
                bias_var.type.precision.rounding_mode = RoundingMode.RND_CONV
            if layer.get_attr("_weights_transposed", False):
                # hls4ml's Resource strategy stores the output channel first; move it last.
                weights = np.moveaxis(weights, 0, -1)
            if kind.startswith("Depthwise"):
                weights = _depthwise_columns(layer, weights)
            interval, reason = _matmul_interval(layer, weights, bias, inputs[0])
            precision = exact_type(interval, signed=True)
            _assign(layer.types["accum_t"], precision)
            if precision.width > FLOAT32_EXACT_BITS:
                reason += f"; NOTE: wider than {FLOAT32_EXACT_BITS} bits, the float32 reference may round"
            record(layer, "accum", precision, interval, reason)
            if layer.get_attr("quantizer") is not None:
                # hls4ml's MergeLinearActivation moved a following Quant (with no ReLU) into this layer: the
                # result has the quantizer's type, and the cast from the accumulator rounds and saturates.
                result = _precision_of(layer)
                interval = _quantized_interval(interval, result, relu=False)
                record(layer, "result", result, interval, "merged quantizer type: round half to even, saturate")
            else:
                _assign(output.type, precision)
                record(layer, "result", precision, interval, "accumulator, exact")

        elif kind in ("LeakyReLU", "ParametrizedActivation") and layer.get_attr("activation", "").lower() == "leakyrelu":
            interval, alpha, param, reason = _leaky_relu_interval(layer, inputs[0])
            _assign(layer.get_attr("param_t"), param)
            record(layer, "param", param, alpha, "alpha, exact")
            if layer.get_attr("quantizer") is not None:
                # MergeLinearActivation moved the following Quant into this layer: the cast of x or
                # alpha * x (both exact at full product precision) to the quantizer type rounds and saturates.
                precision = _precision_of(layer)
                interval = _quantized_interval(interval, precision, relu=False)
                reason = f"merged quantizer type of {reason}: round half to even, saturate"
            else:
                precision = exact_type(interval)
                _assign(output.type, precision)
            record(layer, "result", precision, interval, reason)

        elif kind in ("Pooling2D", "GlobalPooling2D") and layer.get_attr("pool_op") == "Average":
            accum, interval, reason = _average_interval(layer, inputs[0], _following_quantizer(hls_model, layer))
            accum_precision = exact_type(accum)
            precision = exact_type(interval)
            _assign(layer.types["accum_t"], accum_precision)
            _assign(output.type, precision)
            record(layer, "accum", accum_precision, accum, reason)
            record(layer, "result", precision, interval, "sum / count at the accumulator's LSB, exact")

        elif kind in ("BatchNormalization", "BatchNormOnnx"):
            raise UnsupportedModelError(
                f"layer {layer.name!r} ({kind}): a separate batch normalization is not supported by exact lowering, "
                "because its float scale gamma / sqrt(var + eps) makes the float32 reference round; fold it into "
                "the preceding convolution's weights and bias before export"
            )

        elif kind == "Reshape":
            # In io_stream a reshape is nnet::repack_stream, or nothing when hls4ml makes it in place.
            interval = inputs[0]
            precision = layer.get_input_variable().type.precision
            _assign(output.type, precision)
            record(layer, "result", precision, interval, "reshape keeps the input type")

        elif kind == "Clone":
            # nnet::clone_stream copies its input into streams of one type, the first output's.
            interval = inputs[0]
            precision = layer.get_input_variable().type.precision
            for name in layer.outputs:
                _assign(layer.get_output_variable(name).type, precision)
            record(layer, "result", precision, interval, "stream copies keep the input type")

        elif kind == "Resize":
            # nnet::resize_nearest copies input elements into an output of the input's type.
            interval = inputs[0]
            precision = layer.get_input_variable().type.precision
            _assign(output.type, precision)
            record(layer, "result", precision, interval, "nearest resize copies values: input type")

        elif kind == "Concatenate":
            aligned = _aligned(inputs)
            interval = Interval(min(a.lo for a in aligned), max(a.hi for a in aligned), aligned[0].frac)
            precision = exact_type(interval)
            _assign(output.type, precision)
            record(layer, "result", precision, interval, "both inputs at the finer LSB, exact")

        elif kind == "Merge" and layer.get_attr("op") == "add":
            aligned = _aligned(inputs)
            interval = Interval(sum(a.lo for a in aligned), sum(a.hi for a in aligned), aligned[0].frac)
            precision = exact_type(interval)
            reason = "sum of both inputs at the finer LSB, exact"
            if precision.width > FLOAT32_EXACT_BITS:
                reason += f"; NOTE: wider than {FLOAT32_EXACT_BITS} bits, the float32 reference may round"
            _assign(output.type, precision)
            record(layer, "result", precision, interval, reason)

        elif kind in LAYER_RULES:
            interval = LAYER_RULES[kind](layer, inputs, record)

        else:
            raise UnsupportedModelError(
                f"layer {layer.name!r} ({kind}): not supported by exact lowering; supported: input and "
                "quantizer activations, ReLU, zero padding, max pooling, convolution, dense"
            )
        intervals[output.name] = interval
        for name in layer.outputs:
            intervals[name] = interval
    return table


def format_table(table: list[PrecisionEntry]) -> str:
    """Render the precision table as Markdown."""
    lines = [
        "| layer | tensor | type | value range | why |",
        "|---|---|---|---|---|",
    ]
    for entry in table:
        lo, hi = entry.interval.value_range()
        lines.append(f"| {entry.layer} | {entry.tensor} | `{entry.type}` | [{lo:.6g}, {hi:.6g}] | {entry.reason} |")
    return "\n".join(lines) + "\n"

"""The threshold and rescale layers of ``codesign.thresholds`` as hls4ml layers (hls4ml 1.3.0, Vitis backend).

``register_extension`` registers, once per process:

- the ONNX handlers for the ``CodesignThreshold`` and ``CodesignRescale``
  nodes that ``codesign.thresholds.lower_float_scales`` writes
  (``hls4ml.converters.register_onnx_layer_handler``);
- the layer classes (``hls4ml.model.layers.register_layer``);
- their Vitis config templates, which render the thresholds or the rescale
  constants into ``parameters.h``, and function templates, which call
  ``nnet::codesign_threshold`` and ``nnet::codesign_rescale``;
- the header ``hls_templates/codesign_threshold.h`` (``backend.register_source``);
- the precision rules of both layers (``codesign.precision.LAYER_RULES``).

The rewrite runs on the QONNX graph, not as an hls4ml optimizer pass,
because the thresholds need each Quant's scale, zero point and rounding mode
and the float bias. hls4ml's own QONNX passes fold those into ``ApplyAlpha``
layers before any later pass could read them.
"""

from __future__ import annotations

import math
from fractions import Fraction

import hls4ml
import numpy as np
from hls4ml.backends.template import FunctionCallTemplate, LayerConfigTemplate
from hls4ml.converters.onnx_to_hls import get_onnx_attribute
from hls4ml.model.layers import Layer
from hls4ml.model.types import FixedPrecisionType, NamedType
from onnx import numpy_helper

from codesign.errors import UnsupportedModelError
from codesign.precision import LAYER_RULES, Interval, _assign, exact_type
from codesign.templating import TEMPLATE_DIR
from codesign.thresholds import RESCALE_OP, THRESHOLD_OP

BACKEND = "Vitis"
HEADER = "codesign_threshold.h"
# The rescaled output keeps at most this many bits, so float32's 24-bit
# significand leaves 4 bits for the float32 reference's own rounding.
MAX_RESCALED_WIDTH = 20
# Rescale constants are written as 64-bit C++ integer literals.
MAX_CONSTANT_BITS = 63

_registered = False


def _integer_type(low: int, high: int) -> FixedPrecisionType:
    return exact_type(Interval(low, high, 0))


class CodesignThreshold(Layer):
    """Per-channel thresholds on an integer accumulator; outputs ``offset + step * count(acc >= T[c, k])``."""

    def initialize(self):
        shape = self.get_input_variable().shape
        thresholds = self.get_attr("thresholds")
        self.set_attr("n_in", int(np.prod(shape)))
        self.set_attr("n_chan", int(shape[-1]))
        self.set_attr("n_thresholds", int(thresholds.shape[1]))
        if thresholds.shape[0] != shape[-1]:
            raise UnsupportedModelError(
                f"layer {self.name!r}: {thresholds.shape[0]} threshold rows for {shape[-1]} channels"
            )
        precision = _integer_type(self.get_attr("out_min"), self.get_attr("out_max"))
        self.add_output_variable(shape, precision=precision)
        self.set_attr("threshold_t", NamedType(f"threshold{self.index}_t", FixedPrecisionType(64, 64, signed=True)))


class CodesignRescale(Layer):
    """Nearest fixed-point value of ``(acc * multiplier[c] + offset[c]) / 2**exponent``."""

    def initialize(self):
        shape = self.get_input_variable().shape
        self.set_attr("n_in", int(np.prod(shape)))
        self.set_attr("n_chan", int(shape[-1]))
        # The precision stage sets the real widths and the shift.
        self.add_output_variable(shape, precision=FixedPrecisionType(32, 16, signed=True))
        self.set_attr("product_t", NamedType(f"product{self.index}_t", FixedPrecisionType(64, 64, signed=True)))


def _parse_threshold(node, input_names, input_shapes, graph):
    return {
        "class_name": THRESHOLD_OP,
        "name": node.name,
        "inputs": input_names,
        "outputs": list(node.output),
        "thresholds": numpy_helper.to_array(get_onnx_attribute(node, "thresholds")).astype(np.int64),
        "offset": int(get_onnx_attribute(node, "offset")),
        "out_min": int(get_onnx_attribute(node, "out_min")),
        "out_max": int(get_onnx_attribute(node, "out_max")),
        "carried_scale": float(get_onnx_attribute(node, "carried_scale")),
        # 2 for a BipolarQuant (codes -1 and +1), else 1.
        "step": int(get_onnx_attribute(node, "step", 1)),
    }


def _parse_rescale(node, input_names, input_shapes, graph):
    def integers(name):
        return [int(value) for value in get_onnx_attribute(node, name)]

    return {
        "class_name": RESCALE_OP,
        "name": node.name,
        "inputs": input_names,
        "outputs": list(node.output),
        "multipliers": integers("multipliers"),
        "offsets": integers("offsets"),
        "exponent": int(get_onnx_attribute(node, "exponent")),
        "relu": bool(get_onnx_attribute(node, "relu")),
        "min_step": Fraction(get_onnx_attribute(node, "min_step")),
    }


def _rows(values) -> str:
    return ",\n    ".join("{" + ", ".join(f"{int(v)}LL" for v in row) + "}" for row in values)


class ThresholdConfigTemplate(LayerConfigTemplate):
    def __init__(self):
        super().__init__(CodesignThreshold)

    def format(self, node):
        thresholds = node.get_attr("thresholds_clamped", node.get_attr("thresholds"))
        count = int(thresholds.shape[1])
        search_start = 1 << (count.bit_length() - 1) if count else 0
        name = f"config{node.index}"
        threshold_t = node.get_attr("threshold_t").name
        return (
            f"struct {name} {{\n"
            f"    static const unsigned n_in = {node.get_attr('n_in')};\n"
            f"    static const unsigned n_chan = {node.get_attr('n_chan')};\n"
            f"    static const unsigned n_thresholds = {count};\n"
            f"    static const unsigned search_start = {search_start};\n"
            f"    static const int offset = {node.get_attr('offset')};\n"
            f"    static const int step = {node.get_attr('step', 1)};\n"
            f"    typedef {threshold_t} threshold_t;\n"
            f"    static const threshold_t thresholds[{node.get_attr('n_chan')}][{max(count, 1)}];\n"
            f"}};\n"
            f"const {threshold_t} {name}::thresholds[{node.get_attr('n_chan')}][{max(count, 1)}] = {{\n"
            f"    {_rows(thresholds if count else [[0]] * node.get_attr('n_chan'))}\n}};\n"
        )


class ThresholdFunctionTemplate(FunctionCallTemplate):
    def __init__(self):
        super().__init__(CodesignThreshold, include_header=[f"nnet_utils/{HEADER}"])

    def format(self, node):
        params = self._default_function_params(node)
        return "nnet::codesign_threshold<{input_t}, {output_t}, {config}>({input}, {output});".format(**params)


class RescaleConfigTemplate(LayerConfigTemplate):
    def __init__(self):
        super().__init__(CodesignRescale)

    def format(self, node):
        name = f"config{node.index}"
        channels = node.get_attr("n_chan")
        output = node.get_output_variable().type.precision
        return (
            f"struct {name} {{\n"
            f"    static const unsigned n_in = {node.get_attr('n_in')};\n"
            f"    static const unsigned n_chan = {channels};\n"
            f"    static const unsigned shift = {node.get_attr('shift', 0)};\n"
            f"    static const unsigned out_width = {output.width};\n"
            f"    static const bool relu = {str(node.get_attr('relu')).lower()};\n"
            f"    typedef {node.get_attr('product_t').name} product_t;\n"
            f"    static const long long multipliers[{channels}];\n"
            f"    static const long long offsets[{channels}];\n"
            f"}};\n"
            f"const long long {name}::multipliers[{channels}] = {_rows([node.get_attr('multipliers')])};\n"
            f"const long long {name}::offsets[{channels}] = {_rows([node.get_attr('offsets')])};\n"
        )


class RescaleFunctionTemplate(FunctionCallTemplate):
    def __init__(self):
        super().__init__(CodesignRescale, include_header=[f"nnet_utils/{HEADER}"])

    def format(self, node):
        params = self._default_function_params(node)
        return "nnet::codesign_rescale<{input_t}, {output_t}, {config}>({input}, {output});".format(**params)


def _integer_source(layer, inputs: list[Interval]) -> Interval:
    source = inputs[0]
    if source.frac != 0:
        raise UnsupportedModelError(
            f"layer {layer.name!r} ({layer.class_name}): its input has {source.frac} fractional bits; "
            "thresholds need an integer accumulator"
        )
    return source


def threshold_precision(layer, inputs: list[Interval], record) -> Interval:
    """Clamp the thresholds to the accumulator's range and set the threshold and output types."""
    source = _integer_source(layer, inputs)
    thresholds = np.clip(layer.get_attr("thresholds"), source.lo, source.hi + 1)
    layer.set_attr("thresholds_clamped", thresholds)
    threshold_interval = Interval(int(thresholds.min(initial=source.lo)), int(thresholds.max(initial=source.hi)), 0)
    threshold_precision = exact_type(threshold_interval, signed=True)
    _assign(layer.types["threshold_t"], threshold_precision)
    record(layer, "thresholds", threshold_precision, threshold_interval,
           f"{thresholds.shape[1]} thresholds per channel, clamped to the accumulator range")

    offset = layer.get_attr("offset")
    step = layer.get_attr("step", 1)
    low = offset + step * int((thresholds <= source.lo).sum(axis=1).min())
    high = offset + step * int((thresholds <= source.hi).sum(axis=1).max())
    interval = Interval(low, high, 0)
    precision = exact_type(interval)
    _assign(layer.get_output_variable().type, precision)
    record(layer, "result", precision, interval,
           f"quantizer code minus zero point, by threshold count (exact); real value = code * {layer.get_attr('carried_scale'):.8g}")
    return interval


def _bits(value: int) -> int:
    return abs(value).bit_length() + 1


def rescale_precision(layer, inputs: list[Interval], record) -> Interval:
    """Choose the output LSB, size the product and output types, and set the rounding shift."""
    source = _integer_source(layer, inputs)
    multipliers = layer.get_attr("multipliers")
    offsets = layer.get_attr("offsets")
    exponent = layer.get_attr("exponent")
    relu = layer.get_attr("relu")
    where = f"layer {layer.name!r} ({layer.class_name})"
    if any(m <= 0 for m in multipliers):
        raise UnsupportedModelError(f"{where}: scales must be positive")
    if max(_bits(v) for v in multipliers + offsets) > MAX_CONSTANT_BITS + 1:
        raise UnsupportedModelError(f"{where}: rescale constants exceed 64 bits")
    products = [(source.lo * m + b, source.hi * m + b) for m, b in zip(multipliers, offsets)]
    product_lo = min(low for low, _ in products)
    product_hi = max(high for _, high in products)
    if relu:
        product_lo = max(product_lo, 0)
        product_hi = max(product_hi, 0)
    product_interval = Interval(product_lo, product_hi, 0)

    # One LSB is at most one accumulator step of the finest channel, and the
    # output is exact when the constants need no more fractional bits.
    frac = min(exponent, -math.floor(math.log2(layer.get_attr("min_step"))))

    def rounded(value: int, shift: int) -> int:
        quotient, remainder = divmod(value, 1 << shift)
        half = (1 << shift) // 2
        if shift and (remainder > half or (remainder == half and quotient % 2)):
            quotient += 1
        return quotient

    while True:
        shift = exponent - frac
        interval = Interval(rounded(product_lo, shift), rounded(product_hi, shift), frac)
        precision = exact_type(interval, signed=True)
        if precision.width <= MAX_RESCALED_WIDTH or frac <= 0:
            break
        frac -= 1
    layer.set_attr("shift", shift)
    # The rounding step forms 2**(shift - 1) and 2**shift in the product type, so it needs shift + 2 bits.
    product_width = max(exact_type(product_interval, signed=True).width, shift + 2)
    _assign(layer.types["product_t"], FixedPrecisionType(product_width, product_width, signed=True))
    _assign(layer.get_output_variable().type, precision)
    bound = 0.5 if shift else 0.0
    layer.set_attr("error_bound_lsb", bound)
    record(layer, "product", layer.types["product_t"].precision, product_interval,
           "accumulator times the per-channel scale plus bias, exact integers")
    record(layer, "result", precision, interval,
           f"nearest value with LSB 2^-{frac} of the exact float-scale output (round half to even): "
           f"error at most {bound} LSB")
    return interval


def register_extension() -> None:
    """Register the handlers, layers, templates, header and precision rules with hls4ml (once per process)."""
    global _registered
    if _registered:
        return
    hls4ml.converters.register_onnx_layer_handler(THRESHOLD_OP, _parse_threshold)
    hls4ml.converters.register_onnx_layer_handler(RESCALE_OP, _parse_rescale)
    hls4ml.model.layers.register_layer(THRESHOLD_OP, CodesignThreshold)
    hls4ml.model.layers.register_layer(RESCALE_OP, CodesignRescale)
    backend = hls4ml.backends.get_backend(BACKEND)
    for template in (ThresholdConfigTemplate, ThresholdFunctionTemplate, RescaleConfigTemplate, RescaleFunctionTemplate):
        backend.register_template(template)
    backend.register_source(TEMPLATE_DIR / HEADER)
    LAYER_RULES[THRESHOLD_OP] = threshold_precision
    LAYER_RULES[RESCALE_OP] = rescale_precision
    _registered = True

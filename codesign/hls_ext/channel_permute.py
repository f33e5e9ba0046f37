"""The channel permute node of ``codesign.channel_permute`` as an hls4ml layer (hls4ml 1.3.0, Vitis backend).

``register_extension`` registers, once per process, the ONNX handler, the
layer class, its Vitis config and function templates, the header
``hls_templates/codesign_channel_permute.h`` and the precision rule.
"""

from __future__ import annotations

import hls4ml
import numpy as np
from hls4ml.backends.template import FunctionCallTemplate, LayerConfigTemplate
from hls4ml.converters.onnx_to_hls import get_onnx_attribute
from hls4ml.model.layers import Layer

from codesign.channel_permute import CHANNEL_PERMUTE_OP
from codesign.errors import UnsupportedModelError
from codesign.precision import LAYER_RULES, Interval, _assign
from codesign.templating import TEMPLATE_DIR

BACKEND = "Vitis"
HEADER = "codesign_channel_permute.h"

_registered = False


class CodesignChannelPermute(Layer):
    """Per-pixel channel permutation of a streamed tensor: ``out[..., c] = in[..., permutation[c]]``."""

    def initialize(self):
        shape = self.get_input_variable().shape
        permutation = self.get_attr("permutation")
        if sorted(permutation) != list(range(shape[-1])):
            raise UnsupportedModelError(
                f"layer {self.name!r}: {permutation} is not a permutation of {shape[-1]} channels"
            )
        self.set_attr("n_in", int(np.prod(shape)))
        self.set_attr("n_chan", int(shape[-1]))
        self.add_output_variable(shape, precision=self.get_input_variable().type.precision)


def _parse_channel_permute(node, input_names, input_shapes, graph):
    return {
        "class_name": CHANNEL_PERMUTE_OP,
        "name": node.name,
        "inputs": input_names,
        "outputs": list(node.output),
        "permutation": [int(c) for c in get_onnx_attribute(node, "permutation")],
    }


class ChannelPermuteConfigTemplate(LayerConfigTemplate):
    def __init__(self):
        super().__init__(CodesignChannelPermute)

    def format(self, node):
        name = f"config{node.index}"
        channels = node.get_attr("n_chan")
        permutation = ", ".join(str(c) for c in node.get_attr("permutation"))
        return (
            f"struct {name} {{\n"
            f"    static const unsigned n_in = {node.get_attr('n_in')};\n"
            f"    static const unsigned n_chan = {channels};\n"
            f"    static const unsigned permutation[{channels}];\n"
            f"}};\n"
            f"const unsigned {name}::permutation[{channels}] = {{{permutation}}};\n"
        )


class ChannelPermuteFunctionTemplate(FunctionCallTemplate):
    def __init__(self):
        super().__init__(CodesignChannelPermute, include_header=[f"nnet_utils/{HEADER}"])

    def format(self, node):
        params = self._default_function_params(node)
        return "nnet::codesign_channel_permute<{input_t}, {output_t}, {config}>({input}, {output});".format(**params)


def channel_permute_precision(layer, inputs: list[Interval], record) -> Interval:
    """Give the output the input's type, because the layer only copies values."""
    interval = inputs[0]
    precision = layer.get_input_variable().type.precision
    _assign(layer.get_output_variable().type, precision)
    record(layer, "result", precision, interval,
           "channel permutation copies values: input type")
    return interval


def register_extension() -> None:
    """Register the handler, layer, templates, header and precision rule with hls4ml (once per process)."""
    global _registered
    if _registered:
        return
    hls4ml.converters.register_onnx_layer_handler(CHANNEL_PERMUTE_OP, _parse_channel_permute)
    hls4ml.model.layers.register_layer(CHANNEL_PERMUTE_OP, CodesignChannelPermute)
    backend = hls4ml.backends.get_backend(BACKEND)
    backend.register_template(ChannelPermuteConfigTemplate)
    backend.register_template(ChannelPermuteFunctionTemplate)
    backend.register_source(TEMPLATE_DIR / HEADER)
    LAYER_RULES[CHANNEL_PERMUTE_OP] = channel_permute_precision
    _registered = True

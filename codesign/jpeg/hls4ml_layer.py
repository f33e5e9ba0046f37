"""The JPEG decoder as an hls4ml layer, registered with hls4ml's extension API (hls4ml 1.3.0, Vitis backend).

``register_extension`` registers, once per process:

- the layer class ``JpegDecoder`` (``hls4ml.model.layers.register_layer``);
- its Vitis config template, which renders the decoder tables into
  ``parameters.h`` as ``struct config<index>``, and its function template,
  which calls ``nnet::jpeg_decoder`` (``hls_templates/jpeg/nnet_jpeg_decoder.h``);
- the sources ``jpeg_decoder.h`` and ``nnet_jpeg_decoder.h``
  (``backend.register_source``), which every project that the Vitis backend
  writes afterwards receives in ``firmware/nnet_utils``;
- the optimizer pass ``vitis:codesign_insert_jpeg_decoder`` and the flow
  ``vitis:codesign_jpeg_frontend`` that runs it.

``attach_decoder`` applies that flow to a converted model. The pass changes
the graph input to the compressed byte stream (``ap_uint<8>`` packets of one
byte) and inserts the decoder between the input and the layer that read the
pixels, so the hls4ml top itself takes frames. The pass runs after
conversion and after ``codesign.precision`` has set every type, so the
interval analysis runs on the pixel-input graph that the QONNX reference
computes. The decoded samples are the detector's input codes unchanged
(``ap_ufixed<8,0>``, value = sample / 256), which keeps the design exact.
"""

from __future__ import annotations

import logging
import re

import hls4ml
from hls4ml.backends.template import FunctionCallTemplate, LayerConfigTemplate
from hls4ml.model.layers import Layer
from hls4ml.model.optimizer import OptimizerPass
from hls4ml.model.types import FixedPrecisionType, IntegerPrecisionType

from codesign.jpeg import hls
from codesign.jpeg.frontend import FRAME_HEADER_BYTES, MAX_PAYLOAD_BYTES, FrontEnd, tables_from_dict, tables_to_dict
from codesign.templating import TEMPLATE_DIR

log = logging.getLogger(__name__)

BACKEND = "Vitis"
LAYER_NAME = "JpegDecoder"
NODE_NAME = "jpeg_decoder"
PASS_NAME = "codesign_insert_jpeg_decoder"
FLOW_NAME = "codesign_jpeg_frontend"
# Key of the model configuration (``ModelGraph.config.config``) that requests
# a decoder from the pass. Its value describes the stream format.
CONFIG_KEY = "CodesignJpegFrontend"
LAYER_HEADER = "nnet_jpeg_decoder.h"
SOURCES = (hls.KERNEL_HEADER, LAYER_HEADER)
# The graph input's first dimension: the longest frame. Only hls4ml's own
# testbench and Python bridge size buffers from it, because the layer reads
# 2 + length bytes of each frame from the stream.
MAX_FRAME_BYTES = FRAME_HEADER_BYTES + MAX_PAYLOAD_BYTES
PIXEL_PRECISION = FixedPrecisionType(width=8, integer=0, signed=False)
BYTE_PRECISION = IntegerPrecisionType(width=8, signed=False)

_registered = False


class JpegDecoder(Layer):
    """Baseline JPEG decoder for one fixed stream format: frame bytes in, H x W x C pixels out.

    Attributes: ``jpeg_tables`` (``tables_to_dict`` of the decoder tables)
    and ``n_chan``, the output channels (3 also for greyscale, which repeats
    the grey level).
    """

    def initialize(self):
        tables = tables_from_dict(self.get_attr("jpeg_tables"))
        shape = [tables.frame.height, tables.frame.width, self.get_attr("n_chan")]
        self.add_output_variable(shape, precision=PIXEL_PRECISION)


class JpegDecoderConfigTemplate(LayerConfigTemplate):
    """Renders the decoder tables as ``struct config<index>`` (``hls_templates/jpeg/jpeg_config.h``)."""

    def __init__(self):
        super().__init__(JpegDecoder)

    def format(self, node):
        tables = tables_from_dict(node.get_attr("jpeg_tables"))
        return hls.config_header(tables, f"config{node.index}", kernel_include=f"nnet_utils/{hls.KERNEL_HEADER}")


class JpegDecoderFunctionTemplate(FunctionCallTemplate):
    def __init__(self):
        super().__init__(JpegDecoder, include_header=[f"nnet_utils/{LAYER_HEADER}"])

    def format(self, node):
        params = self._default_function_params(node)
        return "nnet::jpeg_decoder<{input_t}, {output_t}, {config}>({input}, {output});".format(**params)


class InsertJpegDecoder(OptimizerPass):
    """Turn the graph input into the frame byte stream and insert a ``JpegDecoder`` after it.

    Matches the input layer of a model whose configuration contains
    ``CONFIG_KEY`` and whose input does not yet feed a decoder. The decoder's
    output variable takes the input's place, with the input's precision,
    which must be ``ap_ufixed<8,0>``.
    """

    def match(self, node):
        if node.class_name != "Input" or node.model.config.get_config_value(CONFIG_KEY) is None:
            return False
        return not any(consumer.class_name == LAYER_NAME for consumer in node.get_output_nodes())

    def transform(self, model, node):
        from hls4ml.model.optimizer import get_optimizer

        if len(model.inputs) != 1:
            raise ValueError(f"the JPEG decoder layer needs a model with one input, got {len(model.inputs)}")
        pixels = node.get_output_variable()
        precision = pixels.type.precision
        if (precision.width, precision.integer, precision.signed) != (8, 0, False):
            raise ValueError(f"the JPEG decoder layer feeds ap_ufixed<8,0> pixels, but input {node.name} is {precision}")
        format_entry = model.config.get_config_value(CONFIG_KEY)
        tables = tables_from_dict(format_entry["tables"])
        if list(pixels.shape) != [tables.frame.height, tables.frame.width, pixels.shape[-1]]:
            raise ValueError(
                f"the JPEG stream format is {tables.frame.width}x{tables.frame.height}, but input {node.name} "
                f"has shape {pixels.shape}"
            )

        # The input now carries frame bytes, one per stream packet.
        node.set_attr("input_shape", [MAX_FRAME_BYTES, 1])
        node.add_output_variable(
            [MAX_FRAME_BYTES, 1], var_name=node.name, type_name=pixels.type.name, precision=BYTE_PRECISION
        )
        model.register_output_variable(node.outputs[0], node.get_output_variable())

        decoder = model.make_node(
            LAYER_NAME, NODE_NAME, {"jpeg_tables": format_entry["tables"], "n_chan": pixels.shape[-1]}, [node.outputs[0]]
        )
        consumers = node.get_output_nodes()
        if len(consumers) != 1:
            raise ValueError(f"the JPEG decoder layer needs an input that one layer reads, but {len(consumers)} read it")
        model.insert_node(decoder)
        # Conversion already gave every other variable its Vitis stream type.
        transform_types = get_optimizer("vivado:transform_types")
        for changed in (node, decoder):
            transform_types.transform(model, changed)
            model.register_output_variable(changed.outputs[0], changed.get_output_variable())
        # hls4ml sizes a stream for a whole image (9,216 pixels at 96x96).
        # One image line decouples the decoder's line bursts from the next
        # layer, as codesign.estimate.jpeg assumes.
        decoder.get_output_variable().pragma = ("stream", tables.frame.width)
        for consumer in consumers:
            _rename_call_input(consumer, pixels.name, pixels.type.name, decoder.get_output_variable())
        log.debug("inserted %s after input %s", decoder.name, node.name)
        return True


def _rename_call_input(layer, old_name: str, old_type: str, variable) -> None:
    """Make a layer's rendered function call read ``variable`` in place of the graph input.

    Only the call's input argument and its first template argument change,
    so templates that other code applied to the layer stay in effect.
    Raises ``ValueError`` when the call does not read the old input.
    """
    call = layer.get_attr("function_cpp")
    if call is None:
        return  # The backend's template flow has not run yet and will render the new input.
    renamed = re.sub(rf"<{re.escape(old_type)}\b", f"<{variable.type.name}", call, count=1)
    renamed, count = re.subn(rf"\({re.escape(old_name)}\b", f"({variable.name}", renamed, count=1)
    if count != 1 or renamed == call:
        raise ValueError(f"layer {layer.name}: its call {call!r} does not read the graph input {old_name}")
    layer.set_attr("function_cpp", renamed)


def register_extension() -> None:
    """Register the layer, its templates and sources, the pass and its flow with hls4ml (once per process)."""
    global _registered
    if _registered:
        return
    hls4ml.model.layers.register_layer(LAYER_NAME, JpegDecoder)
    backend = hls4ml.backends.get_backend(BACKEND)
    backend.register_template(JpegDecoderConfigTemplate)
    backend.register_template(JpegDecoderFunctionTemplate)
    for name in SOURCES:
        backend.register_source(TEMPLATE_DIR / "jpeg" / name)
    pass_name = f"{BACKEND.lower()}:{PASS_NAME}"
    backend.register_pass(PASS_NAME, InsertJpegDecoder)
    hls4ml.model.flow.register_flow(FLOW_NAME, [pass_name], backend=BACKEND)
    _registered = True


def attach_decoder(hls_model, front_end: FrontEnd) -> None:
    """Make a converted hls4ml model read frames of ``front_end``'s stream format.

    Runs the ``codesign_jpeg_frontend`` flow, then renders the decoder's
    templates. The backend's template flow does not run again, because it
    would replace templates that other code applied after conversion. Raises
    ``ValueError`` when the model's input is not ``ap_ufixed<8,0>`` pixels of
    the format's size.
    """
    register_extension()
    hls_model.config.config[CONFIG_KEY] = {"format": front_end.describe(), "tables": tables_to_dict(front_end.tables)}
    hls_model.apply_flow(f"{BACKEND.lower()}:{FLOW_NAME}")
    decoders = [layer for layer in hls_model.get_layers() if layer.class_name == LAYER_NAME]
    if len(decoders) != 1:
        raise ValueError(f"the {FLOW_NAME} flow left {len(decoders)} JPEG decoder layers; expected 1")
    for template in (JpegDecoderConfigTemplate(), JpegDecoderFunctionTemplate()):
        template.transform(hls_model, decoders[0])

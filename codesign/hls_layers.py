"""ONNX-to-hls4ml handlers that codesign adds for layers hls4ml 1.3.0 parses wrongly in channels-last form.

- Nearest ``Resize``: hls4ml's handler reads the input height from the
  width axis, and its ``ResizeRemoveConstants`` pass fails on the empty
  ``roi`` that PyTorch exports. ``prepare_for_hls4ml`` renames each nearest
  ``Resize`` to ``NEAREST_RESIZE_OP`` with its integer scale factors as
  attributes, and the handler registered here builds hls4ml's ``Resize``
  layer from the channels-last shapes.
- Pooling with a stride smaller than its size: hls4ml's streaming pooling
  asserts stride == size, so ``OverlappingPoolingFunctionTemplate`` calls
  codesign's copy without that assertion.
- Global average pooling: hls4ml's handler reads channels-first axes.
  ``ChannelsLastSpatialOps`` writes it as ``ReduceMean`` over H and W, which
  is renamed to ``GLOBAL_AVERAGE_POOL_OP`` here.

The renamed model is only given to hls4ml; the reference and the saved
channels-last model keep the standard ops.
"""

from __future__ import annotations

import hls4ml
import numpy as np
import onnx
from hls4ml.backends.template import FunctionCallTemplate
from hls4ml.converters.onnx_to_hls import get_onnx_attribute, register_onnx_layer_handler
from hls4ml.model.layers import Pooling2D
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.general import RemoveUnusedTensors

from codesign.errors import UnsupportedModelError
from codesign.layouts import reduce_axes
from codesign.templating import TEMPLATE_DIR

NEAREST_RESIZE_OP = "CodesignNearestResize"
POOLING_HEADER = "codesign_pooling.h"
GLOBAL_AVERAGE_POOL_OP = "CodesignGlobalAveragePool"
CODESIGN_DOMAIN = "codesign"

_registered = False


def _parse_nearest_resize(node, input_names, input_shapes, graph):
    shape = input_shapes[0]
    if len(shape) != 4:
        raise UnsupportedModelError(f"node {node.name!r} (Resize): only 2-D (N, H, W, C) nearest resize is supported")
    scale_height, scale_width = get_onnx_attribute(node, "scale_factors")
    _, height, width, channels = shape
    return {
        "name": node.name,
        "class_name": "Resize",
        "inputs": input_names[:1],
        "outputs": list(node.output),
        "in_height": height,
        "in_width": width,
        "out_height": height * scale_height,
        "out_width": width * scale_width,
        "n_chan": channels,
        "algorithm": "nearest",
        "data_format": "channels_last",
    }


def _parse_global_average_pool(node, input_names, input_shapes, graph):
    _, height, width, channels = input_shapes[0]
    return {
        "name": node.name,
        "class_name": "GlobalAveragePooling2D",
        "inputs": input_names,
        "outputs": list(node.output),
        "in_height": height,
        "in_width": width,
        "n_filt": channels,
        "data_format": "channels_last",
    }


class OverlappingPoolingFunctionTemplate(FunctionCallTemplate):
    """Call ``nnet::codesign_pooling2d_cl`` (``hls_templates/codesign_pooling.h``) for pooling with stride < size.

    hls4ml's own template stays in use for non-overlapping pooling. The
    conversion does not apply templates registered after hls4ml's import, so
    ``apply_templates`` applies this one to the converted model.
    """

    def __init__(self):
        super().__init__(Pooling2D, include_header=[f"nnet_utils/{POOLING_HEADER}"])
        self.name = "codesign_overlapping_pooling2d_function_template"

    def match(self, node):
        if not super().match(node):
            return False
        return (node.get_attr("stride_height"), node.get_attr("stride_width")) != (
            node.get_attr("pool_height"), node.get_attr("pool_width"))

    def format(self, node):
        params = self._default_function_params(node)
        return "nnet::codesign_pooling2d_cl<{input_t}, {output_t}, {config}>({input}, {output});".format(**params)


def apply_templates(hls_model) -> None:
    """Apply codesign's function templates to the layers of a converted hls4ml model that they match."""
    template = OverlappingPoolingFunctionTemplate()
    for layer in hls_model.get_layers():
        if template.match(layer):
            template.transform(hls_model, layer)


def register_handlers() -> None:
    """Register codesign's ONNX handlers, templates and headers with hls4ml once per process."""
    global _registered
    if _registered:
        return
    backend = hls4ml.backends.get_backend("Vitis")
    backend.register_template(OverlappingPoolingFunctionTemplate)
    backend.register_source(TEMPLATE_DIR / POOLING_HEADER)
    register_onnx_layer_handler(NEAREST_RESIZE_OP, _parse_nearest_resize)
    register_onnx_layer_handler(GLOBAL_AVERAGE_POOL_OP, _parse_global_average_pool)
    _registered = True


def _nearest_scale_factors(model: ModelWrapper, node: onnx.NodeProto) -> list[int]:
    """Return the integer H and W scale factors of a channels-last nearest Resize, or raise."""
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    mode = attributes.get("mode", b"nearest").decode()
    transform = attributes.get("coordinate_transformation_mode", b"half_pixel").decode()
    nearest_mode = attributes.get("nearest_mode", b"round_prefer_floor").decode()
    where = f"node {node.name!r} (Resize)"
    if (mode, transform, nearest_mode) != ("nearest", "asymmetric", "floor"):
        raise UnsupportedModelError(
            f"{where}: mode {mode}, coordinate_transformation_mode {transform}, nearest_mode {nearest_mode} is not "
            "supported; supported: nearest, asymmetric, floor (PyTorch's nn.Upsample(mode='nearest'))"
        )
    scales = model.get_initializer(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scales is None or (len(node.input) > 3 and node.input[3]):
        raise UnsupportedModelError(f"{where}: needs constant scales and no sizes input")
    scales = np.asarray(scales, dtype=np.float64)
    factors = np.rint(scales).astype(int)
    if scales.size != 4 or not np.array_equal(factors, scales) or factors[0] != 1 or factors[3] != 1 or factors.min() < 1:
        raise UnsupportedModelError(
            f"{where}: scales {scales.tolist()} are not supported; supported: integer factors on H and W (NHWC)"
        )
    return [int(factors[1]), int(factors[2])]


def prepare_for_hls4ml(model: ModelWrapper) -> ModelWrapper:
    """Return a copy of a channels-last model with the nodes renamed to the handlers registered here."""
    model = ModelWrapper(onnx.ModelProto.FromString(model.model.SerializeToString()))
    for index, node in enumerate(model.graph.node):
        if node.op_type == "Resize":
            factors = _nearest_scale_factors(model, node)
            replacement = helper.make_node(
                NEAREST_RESIZE_OP, [node.input[0]], list(node.output), name=node.name, domain=CODESIGN_DOMAIN,
                scale_factors=factors,
            )
        elif node.op_type == "ReduceMean":
            if len(model.get_tensor_shape(node.input[0])) != 4 or reduce_axes(model, node) != [1, 2]:
                raise UnsupportedModelError(
                    f"node {node.name!r} (ReduceMean): only the mean over H and W of an NHWC tensor "
                    "(global average pooling) is supported"
                )
            replacement = helper.make_node(
                GLOBAL_AVERAGE_POOL_OP, [node.input[0]], list(node.output), name=node.name, domain=CODESIGN_DOMAIN
            )
        else:
            continue
        model.graph.node.remove(node)
        model.graph.node.insert(index, replacement)
    register_handlers()
    # hls4ml makes a layer of every initializer; the dropped roi and scales must not stay behind.
    return model.transform(RemoveUnusedTensors())

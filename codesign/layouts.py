"""Graph transformations for layers that qonnx's channels-last conversion does not cover (qonnx 1.0.0).

qonnx's ``ConvertToChannelsLastAndClean`` has channels-last forms of Conv,
MaxPool and BatchNormalization only. This module adds:

- ``RemoveEmptyResizeRoi``: some exporters (hls4ml's example models) give
  ``Resize`` an empty ``roi`` initializer, on which hls4ml 1.3.0's
  ``ResizeRemoveConstants`` fails. ONNX allows that input to be omitted
  (empty name), as torch 2.13 exports it.
- ``ChannelsLastSpatialOps``: nearest ``Resize``, ``Concat`` on the channel
  axis, ``Pad`` and ``GlobalAveragePool`` between channels-first Transposes
  become their channels-last standard-ONNX forms (``Resize`` with permuted
  scales, ``Concat`` on the last axis, ``Pad`` with permuted pads,
  ``ReduceMean`` over H and W), so the Transposes around them cancel.
- ``ChannelsLastToStandardOps`` and ``StandardToChannelsLastOps``: wrap each
  qonnx channels-last op into Transpose -> standard op -> Transpose, and back.
  onnxruntime runs the wrapped form. qonnx's shape inference of the wrapped
  form is fast, because it skips what qonnx does for a channels-last Conv:
  build a random constant of the output's size and print it (about 20 s per
  4-million-value output on this project's 2-core machine).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import SortGraph
from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit
from qonnx.util.cleanup import cleanup_model

CHANNELS_LAST_DOMAIN = "qonnx.custom_op.channels_last"
# qonnx 1.0.0's channels-last ops, and AveragePool, which ``ChannelsLastSpatialOps`` puts in that domain
# for hls4ml's pooling parser. Each has the attributes of the standard op of the same name.
CHANNELS_LAST_OPS = ("Conv", "MaxPool", "BatchNormalization", "AveragePool")


def _to_first(rank: int) -> list[int]:
    return [0, rank - 1, *range(1, rank - 1)]


def _to_last(rank: int) -> list[int]:
    return [0, *range(2, rank), 1]


def _perm(node: onnx.NodeProto) -> list[int] | None:
    for attribute in node.attribute:
        if attribute.name == "perm":
            return list(attribute.ints)
    return None


def is_channels_last_model(model: ModelWrapper) -> bool:
    """Return True when the model uses qonnx's channels-last ops, so its spatial tensors are NHWC."""
    return any(node.domain == CHANNELS_LAST_DOMAIN for node in model.graph.node)


class ChannelsLastToStandardOps(Transformation):
    """Replace each channels-last op by Transpose(to NCHW) -> standard op -> Transpose(to NHWC)."""

    def apply(self, model: ModelWrapper):
        graph = model.graph
        for index, node in enumerate(graph.node):
            if node.domain != CHANNELS_LAST_DOMAIN or node.op_type not in CHANNELS_LAST_OPS:
                continue
            rank = len(model.get_tensor_shape(node.input[0]))
            source, result = node.input[0], node.output[0]
            first_in = model.make_new_valueinfo_name()
            first_out = model.make_new_valueinfo_name()
            before = [helper.make_node("Transpose", [source], [first_in], perm=_to_first(rank))]
            renamed = [(first_in, source), (first_out, result)]
            inputs = [first_in, *node.input[1:]]
            if node.op_type == "Conv":
                # The channels-last Conv also reads its weights channels-last (OHWI).
                weights_first = model.make_new_valueinfo_name()
                before.append(helper.make_node("Transpose", [node.input[1]], [weights_first], perm=_to_first(rank)))
                renamed.append((weights_first, node.input[1]))
                inputs[1] = weights_first
            standard = helper.make_node(node.op_type, inputs, [first_out], name=node.name)
            standard.attribute.extend(node.attribute)
            after = helper.make_node("Transpose", [first_out], [result], perm=_to_last(rank))
            for shape_name, tensor in renamed:
                shape = model.get_tensor_shape(tensor)
                if shape is not None:
                    model.set_tensor_shape(shape_name, [shape[axis] for axis in _to_first(rank)])
            graph.node.remove(node)
            for offset, new_node in enumerate((*before, standard, after)):
                graph.node.insert(index + offset, new_node)
            return model, True
        return model, False


class StandardToChannelsLastOps(Transformation):
    """Fold Transpose(to NCHW) -> standard op -> Transpose(to NHWC) into the channels-last op.

    The inverse of ``ChannelsLastToStandardOps``; it matches only chains whose
    intermediate tensors have no other consumer.
    """

    def apply(self, model: ModelWrapper):
        graph = model.graph
        for node in graph.node:
            if node.domain not in ("", "ai.onnx") or node.op_type not in CHANNELS_LAST_OPS:
                continue
            before = model.find_producer(node.input[0])
            consumers = model.find_consumers(node.output[0])
            if before is None or before.op_type != "Transpose" or len(consumers) != 1:
                continue
            after = consumers[0]
            rank = len(model.get_tensor_shape(node.input[0]))
            if after.op_type != "Transpose" or _perm(before) != _to_first(rank) or _perm(after) != _to_last(rank):
                continue
            if len(model.find_consumers(before.output[0])) != 1:
                continue
            node.input[0] = before.input[0]
            node.output[0] = after.output[0]
            node.domain = CHANNELS_LAST_DOMAIN
            graph.node.remove(before)
            graph.node.remove(after)
            if node.op_type == "Conv":
                # OIHW weights to OHWI; FoldTransposeIntoQuantInit folds this into the weight quantizer.
                weights_last = model.make_new_valueinfo_name()
                shape = model.get_tensor_shape(node.input[1])
                model.set_tensor_shape(weights_last, [shape[axis] for axis in _to_last(rank)])
                graph.node.append(helper.make_node("Transpose", [node.input[1]], [weights_last], perm=_to_last(rank)))
                node.input[1] = weights_last
            return model, True
        return model, False


def cleanup_channels_last(model: ModelWrapper) -> ModelWrapper:
    """Run qonnx's ``cleanup_model`` on a model with channels-last ops, without its slow shape inference."""
    model = model.transform(ChannelsLastToStandardOps())
    model = cleanup_model(model)
    model = model.transform(StandardToChannelsLastOps())
    return model.transform(FoldTransposeIntoQuantInit()).transform(SortGraph())


class RemoveEmptyResizeRoi(Transformation):
    """Replace an empty ``roi`` initializer of ``Resize`` with the omitted-input name ``""``."""

    def apply(self, model: ModelWrapper):
        for node in model.graph.node:
            if node.op_type != "Resize" or len(node.input) < 2 or not node.input[1]:
                continue
            roi = model.get_initializer(node.input[1])
            if roi is not None and roi.size == 0:
                node.input[1] = ""
        return model, False


def _is_transpose(node: onnx.NodeProto | None, perm: list[int]) -> bool:
    return node is not None and node.op_type == "Transpose" and _perm(node) == perm


def reduce_axes(model: ModelWrapper, node: onnx.NodeProto) -> list[int] | None:
    """Return the sorted non-negative axes of a ReduceMean with keepdims=1, read from the attribute or the input."""
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attributes.get("keepdims", 1) != 1:
        return None
    axes = attributes.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = model.get_initializer(node.input[1])
    if axes is None:
        return None
    rank = len(model.get_tensor_shape(node.input[0]))
    return sorted(int(axis) % rank for axis in np.asarray(axes).ravel())


def _reduce_mean_hw(model: ModelWrapper, node: onnx.NodeProto, source: str, output: str, rank: int) -> onnx.NodeProto:
    """Return a ReduceMean over the spatial axes of an NHWC tensor, with axes in the form the original used."""
    axes = list(range(1, rank - 1))
    if len(node.input) > 1 and node.input[1]:
        axes_name = model.make_new_valueinfo_name()
        model.set_initializer(axes_name, np.asarray(axes, dtype=np.int64))
        return helper.make_node("ReduceMean", [source, axes_name], [output], name=node.name, keepdims=1)
    return helper.make_node("ReduceMean", [source], [output], name=node.name, axes=axes, keepdims=1)


class MoveChannelsFirstPastQuant(Transformation):
    """Swap Transpose(to NCHW) -> Quant into Quant -> Transpose when the Quant has scalar parameters.

    qonnx moves such Transposes only towards its channels-last ops; a model
    without any (pooling only) keeps the input Transpose in front of the
    input quantizer.
    """

    def apply(self, model: ModelWrapper):
        for node in model.graph.node:
            if node.op_type != "Transpose":
                continue
            consumers = model.find_consumers(node.output[0])
            if len(consumers) != 1 or consumers[0].op_type != "Quant":
                continue
            quant = consumers[0]
            parameters = [model.get_initializer(name) for name in quant.input[1:]]
            if any(value is None or np.asarray(value).size != 1 for value in parameters):
                continue
            source, transposed, quantized = node.input[0], node.output[0], quant.output[0]
            shape = model.get_tensor_shape(source)
            quant.input[0] = source
            quant.output[0] = transposed
            node.input[0] = transposed
            node.output[0] = quantized
            model.set_tensor_shape(transposed, shape)
            return model.transform(SortGraph()), True
        return model, False


class ChannelsLastSpatialOps(Transformation):
    """Move nearest Resize, channel Concat, Pad and GlobalAveragePool behind the Transposes to NCHW.

    Matches ``x (NHWC) -> Transpose(to NCHW) -> op`` for every data input of
    the op and rewrites the op to read the NHWC tensors directly, adding one
    Transpose(to NCHW) after it. qonnx's ``RemoveConsecutiveChanFirstAndChanLastTrafos``
    then cancels that Transpose against the next Transpose(to NHWC).
    """

    def apply(self, model: ModelWrapper):
        graph = model.graph
        for index, node in enumerate(graph.node):
            if node.op_type not in ("Resize", "Concat", "GlobalAveragePool", "AveragePool", "Pad", "ReduceMean"):
                continue
            if node.domain not in ("", "ai.onnx"):
                continue
            if node.op_type == "ReduceMean" and reduce_axes(model, node) != [2, 3]:
                continue
            data_inputs = list(node.input) if node.op_type == "Concat" else [node.input[0]]
            rank = len(model.get_tensor_shape(data_inputs[0]))
            if rank < 3:
                continue
            producers = [model.find_producer(name) for name in data_inputs]
            if not all(_is_transpose(producer, _to_first(rank)) for producer in producers):
                continue
            if node.op_type == "Concat":
                axis = helper.get_attribute_value(next(a for a in node.attribute if a.name == "axis"))
                if axis not in (1, 1 - rank):
                    continue
            first_shape = model.get_tensor_shape(node.output[0])
            last_shape = [first_shape[axis] for axis in _to_last(rank)]
            channels_last_out = model.make_new_valueinfo_name()
            model.set_tensor_shape(channels_last_out, last_shape)

            if node.op_type == "Resize":
                scales = model.get_initializer(node.input[2]) if len(node.input) > 2 and node.input[2] else None
                if scales is None or (len(node.input) > 3 and node.input[3]):
                    continue
                scales_name = model.make_new_valueinfo_name()
                model.set_initializer(scales_name, np.asarray(scales, dtype=np.float32)[_to_last(rank)])
                replacement = helper.make_node(
                    "Resize", [producers[0].input[0], "", scales_name], [channels_last_out], name=node.name
                )
                replacement.attribute.extend(node.attribute)
            elif node.op_type == "Pad":
                pads = model.get_initializer(node.input[1])
                if pads is None:
                    continue
                pads_name = model.make_new_valueinfo_name()
                model.set_initializer(pads_name, np.asarray(pads).reshape(2, rank)[:, _to_last(rank)].ravel())
                replacement = helper.make_node(
                    "Pad", [producers[0].input[0], pads_name, *node.input[2:]], [channels_last_out], name=node.name
                )
                replacement.attribute.extend(node.attribute)
            elif node.op_type == "AveragePool":
                replacement = helper.make_node(
                    "AveragePool", [producers[0].input[0]], [channels_last_out], name=node.name, domain=CHANNELS_LAST_DOMAIN
                )
                replacement.attribute.extend(node.attribute)
            elif node.op_type == "Concat":
                replacement = helper.make_node(
                    "Concat", [p.input[0] for p in producers], [channels_last_out], name=node.name, axis=rank - 1
                )
            else:
                replacement = _reduce_mean_hw(model, node, producers[0].input[0], channels_last_out, rank)
            transpose = helper.make_node("Transpose", [channels_last_out], [node.output[0]], perm=_to_first(rank))
            graph.node.remove(node)
            graph.node.insert(index, replacement)
            graph.node.insert(index + 1, transpose)
            for producer in producers:
                if not model.find_consumers(producer.output[0]):
                    graph.node.remove(producer)
            return model, True
        return model, False


def _is_non_negative(model: ModelWrapper, tensor: str) -> bool:
    """Return True when a tensor comes from an unsigned Quant or a Relu, possibly through max pooling or padding."""
    producer = model.find_producer(tensor)
    if producer is None:
        return False
    if producer.op_type == "Relu":
        return True
    if producer.op_type in ("MaxPool", "Pad"):
        return _is_non_negative(model, producer.input[0])
    if producer.op_type == "Quant":
        attributes = {a.name: helper.get_attribute_value(a) for a in producer.attribute}
        return attributes.get("signed", 1) == 0
    return False


class MaxPoolPaddingToPad(Transformation):
    """Move a channels-last MaxPool's padding (and ``ceil_mode``'s implicit padding) into a zero Pad node.

    hls4ml's streaming pooling asserts that it has no padding (hls4ml 1.3.0,
    ``nnet_pooling_stream.h``). ONNX pads max pooling with -inf; zero padding
    gives the same maximum only when every input is non-negative, because each
    window contains at least one input value. Other inputs raise UnsupportedModelError.
    """

    def apply(self, model: ModelWrapper):
        from codesign.errors import UnsupportedModelError

        graph = model.graph
        for index, node in enumerate(graph.node):
            if node.op_type != "MaxPool" or node.domain != CHANNELS_LAST_DOMAIN:
                continue
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            shape = model.get_tensor_shape(node.input[0])
            if len(shape) != 4:
                continue
            kernel, strides = attributes["kernel_shape"], attributes.get("strides", [1, 1])
            pads = list(attributes.get("pads", [0, 0, 0, 0]))
            ceil_mode = attributes.get("ceil_mode", 0)
            for axis in range(2):
                padded = shape[1 + axis] + pads[axis] + pads[axis + 2]
                steps = -(-(padded - kernel[axis]) // strides[axis]) if ceil_mode else (padded - kernel[axis]) // strides[axis]
                pads[axis + 2] += max(0, steps * strides[axis] + kernel[axis] - padded)
            if not any(pads):
                continue
            if not _is_non_negative(model, node.input[0]):
                raise UnsupportedModelError(
                    f"node {node.name!r} (MaxPool): padding {pads} (top, left, bottom, right) on an input that may be "
                    "negative is not supported; hls4ml's streaming pooling has no padding and zero padding changes "
                    "the maximum of negative values. Put the pooling after a ReLU or an unsigned quantizer."
                )
            pads_name = model.make_new_valueinfo_name()
            model.set_initializer(pads_name, np.asarray([0, pads[0], pads[1], 0, 0, pads[2], pads[3], 0], dtype=np.int64))
            padded_name = model.make_new_valueinfo_name()
            model.set_tensor_shape(padded_name, [shape[0], shape[1] + pads[0] + pads[2], shape[2] + pads[1] + pads[3], shape[3]])
            graph.node.insert(index, helper.make_node("Pad", [node.input[0], pads_name], [padded_name], mode="constant"))
            node.input[0] = padded_name
            for attribute in node.attribute:
                if attribute.name == "pads":
                    del attribute.ints[:]
                    attribute.ints.extend([0, 0, 0, 0])
                if attribute.name == "ceil_mode":
                    attribute.i = 0
            return model, True
        return model, False


class RemoveInverseTransposes(Transformation):
    """Remove Transpose pairs that cancel, also where the first Transpose feeds several consumers.

    qonnx's ``RemoveConsecutiveChanFirstAndChanLastTrafos`` skips a Transpose
    whose output forks, as at an input that feeds several branches.
    """

    def apply(self, model: ModelWrapper):
        graph = model.graph
        for node in graph.node:
            if node.op_type != "Transpose":
                continue
            first = model.find_producer(node.input[0])
            if first is None or first.op_type != "Transpose":
                continue
            if list(np.asarray(_perm(first))[_perm(node)]) != list(range(len(_perm(node)))):
                continue
            if node.output[0] in [output.name for output in graph.output]:
                continue
            for consumer in model.find_consumers(node.output[0]):
                for index, name in enumerate(consumer.input):
                    if name == node.output[0]:
                        consumer.input[index] = first.input[0]
            graph.node.remove(node)
            if not model.find_consumers(first.output[0]) and first.output[0] not in [o.name for o in graph.output]:
                graph.node.remove(first)
            return model, True
        return model, False

"""Fuse a channel shuffle into one per-pixel channel permutation node.

PyTorch writes a channel shuffle with ``g`` groups as
``x.view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)``. After
qonnx's ``ConvertToChannelsLastAndClean`` the channels-last graph contains it
as a chain of Transpose and Reshape nodes, for example
Transpose(NHWC -> NCHW) -> Reshape(N, g, C/g, H, W) -> Transpose ->
Reshape(N, C, H, W) -> Transpose(NCHW -> NHWC). hls4ml's io_stream cannot
transpose a streamed tensor, but the chain as a whole only reorders the
channels inside each pixel: ``out[..., c] = in[..., permutation[c]]``. Each
stream element is one pixel's channel vector, so that reordering streams.

``FuseChannelPermutes`` finds such chains by running them on a tensor of
element indices, and replaces each with one ``CodesignChannelPermute`` node
that carries the permutation. Only the model given to hls4ml is rewritten,
because onnxruntime has no kernel for the custom node.

NOTE: the exact tests cover power-of-two scales only. With float scales,
``codesign.thresholds`` sees the unfused chain, and no test has run that case.
"""

from __future__ import annotations

import logging

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import RemoveUnusedTensors

log = logging.getLogger(__name__)

CHANNEL_PERMUTE_OP = "CodesignChannelPermute"
DOMAIN = "codesign.hls_ext"
LAYOUT_OPS = ("Transpose", "Reshape")
# Streamed tensors whose last axis is the channel axis: (N, W, C) and (N, H, W, C).
STREAMED_RANKS = (3, 4)


def _apply_layout_op(model: ModelWrapper, node, array: np.ndarray) -> np.ndarray | None:
    """Return ``node`` applied to ``array``, or None when its shape or permutation is not a constant."""
    if node.op_type == "Transpose":
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        perm = attributes.get("perm")
        return np.transpose(array, list(perm) if perm is not None else None)
    shape = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
    if shape is None:
        return None
    allow_zero = any(a.name == "allowzero" and helper.get_attribute_value(a) for a in node.attribute)
    # ONNX Reshape: 0 copies the input's dimension unless allowzero is set, -1 is inferred.
    target = [array.shape[i] if value == 0 and not allow_zero else int(value) for i, value in enumerate(shape)]
    try:
        return np.reshape(array, target)
    except ValueError:
        return None


def channel_permutation(model: ModelWrapper, chain: list) -> list[int] | None:
    """Return the permutation p with ``out[..., c] = in[..., p[c]]`` that the chain computes, or None.

    None means the chain moves some value to another pixel, changes the
    shape, or has a non-constant shape input.
    """
    shape = model.get_tensor_shape(chain[0].input[0])
    if shape is None or len(shape) not in STREAMED_RANKS:
        return None
    indices = np.arange(int(np.prod(shape))).reshape(shape)
    result = indices
    for node in chain:
        result = _apply_layout_op(model, node, result)
        if result is None:
            return None
    if list(result.shape) != list(shape):
        return None
    channels = shape[-1]
    if not np.array_equal(result // channels, indices // channels):
        return None
    source_channels = (result % channels).reshape(-1, channels)
    if not np.all(source_channels == source_channels[0]):
        return None
    return [int(c) for c in source_channels[0]]


class FuseChannelPermutes(Transformation):
    """Replace each Transpose/Reshape chain that permutes the channels of every pixel by a channel permute node.

    The chain must contain a Transpose, and every tensor inside it must have
    one consumer and not be a graph output. Chains of Reshapes alone stay as
    they are, because hls4ml streams them already.
    """

    def apply(self, model: ModelWrapper):
        graph_outputs = {output.name for output in model.graph.output}

        def single_layout_consumer(node):
            if node.output[0] in graph_outputs:
                return None
            consumers = model.find_consumers(node.output[0])
            if len(consumers) == 1 and consumers[0].op_type in LAYOUT_OPS:
                return consumers[0]
            return None

        for index, node in enumerate(model.graph.node):
            if node.op_type not in LAYOUT_OPS:
                continue
            producer = model.find_producer(node.input[0])
            if producer is not None and producer.op_type in LAYOUT_OPS and single_layout_consumer(producer) is node:
                continue  # Not the first node of its chain.
            chain = [node]
            while (following := single_layout_consumer(chain[-1])) is not None:
                chain.append(following)
            # The longest prefix that permutes channels, so that a Reshape after it (a flatten) stays.
            for end in range(len(chain), 0, -1):
                segment = chain[:end]
                if not any(n.op_type == "Transpose" for n in segment):
                    break
                permutation = channel_permutation(model, segment)
                if permutation is None:
                    continue
                output = segment[-1].output[0]
                fused = helper.make_node(
                    CHANNEL_PERMUTE_OP, [segment[0].input[0]], [output], name=f"ChannelPermute_{output}",
                    domain=DOMAIN, permutation=permutation,
                )
                for member in segment:
                    model.graph.node.remove(member)
                model.graph.node.insert(index, fused)
                log.info("%s: fused %d Transpose/Reshape nodes into the channel permutation %s",
                         fused.name, len(segment), permutation)
                return model.transform(RemoveUnusedTensors()), True
        return model, False

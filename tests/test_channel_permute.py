"""Unit tests of the channel shuffle fusion on hand-built channels-last graphs (no hls4ml, no g++)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.infer_shapes import InferShapes

from codesign.channel_permute import CHANNEL_PERMUTE_OP, FuseChannelPermutes

HEIGHT, WIDTH, CHANNELS = 3, 2, 8


def _model(layout_nodes, output_shape, initializers=()):
    """Return Relu -> layout_nodes -> Relu on a (1, H, W, C) input; layout_nodes read "x" and write "y"."""
    nodes = [helper.make_node("Relu", ["input"], ["x"], name="first")]
    nodes += layout_nodes
    nodes.append(helper.make_node("Relu", ["y"], ["output"], name="last"))
    graph = helper.make_graph(
        nodes, "layout",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, HEIGHT, WIDTH, CHANNELS])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, output_shape)],
        initializer=[numpy_helper.from_array(np.asarray(v, dtype=np.int64), name) for name, v in initializers],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return ModelWrapper(model).transform(InferShapes())


def _shuffle_chain(groups):
    """The channels-last form of a PyTorch channel shuffle, as qonnx's ConvertToChannelsLastAndClean leaves it."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Reshape", ["nchw", "grouped_shape"], ["grouped"]),
        helper.make_node("Transpose", ["grouped"], ["swapped"], perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["swapped", "flat_shape"], ["shuffled"]),
        helper.make_node("Transpose", ["shuffled"], ["y"], perm=[0, 2, 3, 1]),
    ]
    initializers = [
        ("grouped_shape", [1, groups, CHANNELS // groups, HEIGHT, WIDTH]),
        ("flat_shape", [1, CHANNELS, HEIGHT, WIDTH]),
    ]
    return nodes, initializers


def _op_types(model):
    return [node.op_type for node in model.graph.node]


def test_shuffle_chain_fused_into_permutation():
    for groups in (2, 4):
        nodes, initializers = _shuffle_chain(groups)
        model = _model(nodes, [1, HEIGHT, WIDTH, CHANNELS], initializers)

        fused = model.transform(FuseChannelPermutes())

        assert _op_types(fused) == ["Relu", CHANNEL_PERMUTE_OP, "Relu"]
        permute = fused.graph.node[1]
        assert list(permute.input) == ["x"]
        assert list(permute.output) == ["y"]
        permutation = list(helper.get_attribute_value(permute.attribute[0]))
        expected = np.arange(CHANNELS).reshape(groups, CHANNELS // groups).T.ravel().tolist()
        assert permutation == expected
        # The reshape shapes are no longer used and must not reach hls4ml as constants.
        assert fused.get_initializer("grouped_shape") is None


def test_spatial_transpose_not_fused():
    square = [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1, 3])]
    model = _model(square, [1, WIDTH, HEIGHT, CHANNELS])

    fused = model.transform(FuseChannelPermutes())

    assert _op_types(fused) == ["Relu", "Transpose", "Relu"]


def test_flatten_after_shuffle_kept():
    nodes, initializers = _shuffle_chain(2)
    nodes[-1].output[0] = "shuffled_nhwc"
    nodes.append(helper.make_node("Reshape", ["shuffled_nhwc", "flatten_shape"], ["y"]))
    initializers.append(("flatten_shape", [1, HEIGHT * WIDTH * CHANNELS]))
    model = _model(nodes, [1, HEIGHT * WIDTH * CHANNELS], initializers)

    fused = model.transform(FuseChannelPermutes())

    assert _op_types(fused) == ["Relu", CHANNEL_PERMUTE_OP, "Reshape", "Relu"]
    assert list(fused.graph.node[1].output) == ["shuffled_nhwc"]


def test_reshape_only_chain_not_fused():
    nodes = [
        helper.make_node("Reshape", ["x", "split_shape"], ["split"]),
        helper.make_node("Reshape", ["split", "back_shape"], ["y"]),
    ]
    initializers = [("split_shape", [1, HEIGHT * WIDTH, CHANNELS]), ("back_shape", [1, HEIGHT, WIDTH, CHANNELS])]
    model = _model(nodes, [1, HEIGHT, WIDTH, CHANNELS], initializers)

    fused = model.transform(FuseChannelPermutes())

    assert _op_types(fused) == ["Relu", "Reshape", "Reshape", "Relu"]


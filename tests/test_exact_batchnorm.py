"""Exact lowering of BatchNormalization after a convolution or a dense layer.

A batch normalization reaches codesign in two ways. A QAT model keeps it as
a float BatchNormalization between the convolution and the activation
quantizer, which lowers to integer thresholds. A float model quantized with
``--calibrate`` has it merged into the convolution by Brevitas' PTQ
preprocessing. Both must match the float32 reference exactly.
"""

from __future__ import annotations

from fractions import Fraction
import sys
from pathlib import Path

import brevitas.nn as qnn
import numpy as np
import pytest
import onnx
import torch
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from brevitas.quant import (
    Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias, Int32Bias, Uint8ActPerTensorFixedPoint,
)

from codesign import batchnorm
from codesign.cli import main
from codesign.export import export, load_qonnx
from codesign.reference import quant_params
from exact_support import Exportable as _Exportable, calibrate as _calibrate, simulate as _simulate

TESTS = Path(__file__).resolve().parent


def _set_running_stats(module, seed):
    """Give every BatchNorm random eval-mode statistics and gammas of either sign."""
    generator = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            count = layer.num_features
            with torch.no_grad():
                layer.running_mean.copy_(torch.randn(count, generator=generator) * 0.5)
                layer.running_var.copy_(torch.rand(count, generator=generator) * 2 + 0.1)
                layer.weight.copy_(torch.randn(count, generator=generator))
                layer.bias.copy_(torch.randn(count, generator=generator) * 0.3)


@pytest.mark.slow
def test_float_conv_bn_relu_calibrated_exact(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(TESTS)
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.path.insert(0, str(TESTS))
    from batchnorm_models import conv_bn_relu

    torch.manual_seed(3)
    module = conv_bn_relu()
    _set_running_stats(module, seed=3)
    state = tmp_path / "weights.pt"
    torch.save(module.state_dict(), state)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(3)
    for index in range(8):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(images / f"image{index}.png")
    project = tmp_path / "project"

    status = main(["-q", "convert", "batchnorm_models:conv_bn_relu", "--state-dict", str(state),
                   "--calibrate", str(images), "--out", str(project), "--tb-images", "2"])
    qonnx = load_qonnx(project / "model.qonnx.onnx").model
    sim_status, report = _simulate(project, tmp_path)

    assert status == 0
    assert [node.op_type for node in qonnx.graph.node if node.op_type == "BatchNormalization"] == []
    assert len(qonnx.get_nodes_by_op_type("Conv")) == 2
    assert sim_status == 0
    assert report["values"] == 20 * 8 * 8 * 4
    assert report["exact_fraction"] == 1.0


def _qat_conv_batchnorm(weight_quant, act_quant, input_quant):
    """Build QuantConv2d -> BatchNorm2d -> QuantReLU, then a 1 x 1 QuantConv2d with a bias -> BatchNorm2d -> Quant."""
    return torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=input_quant, return_quant_tensor=True),
        qnn.QuantConv2d(3, 6, 3, padding=1, bias=False, weight_quant=weight_quant, weight_bit_width=6),
        torch.nn.BatchNorm2d(6),
        qnn.QuantReLU(act_quant=act_quant, bit_width=5, return_quant_tensor=True),
        qnn.QuantConv2d(6, 4, 1, bias=True, weight_quant=weight_quant, weight_bit_width=4, bias_quant=Int16Bias),
        torch.nn.BatchNorm2d(4),
        qnn.QuantIdentity(act_quant=input_quant, bit_width=6),
    )


def _convert_qat(module, shape, tmp_path):
    _calibrate(module, shape)
    # Statistics set after calibration, so that eval mode uses them as they are.
    _set_running_stats(module, seed=7)
    qonnx = export(_Exportable(module, shape), tmp_path / "export")
    project = tmp_path / "project"
    status = main(["-q", "convert", str(qonnx.path), "--out", str(project), "--tb-images", "2"])
    return qonnx, project, status


@pytest.mark.slow
def test_qat_conv_batchnorm_power_of_two_exact(tmp_path, monkeypatch, caplog):
    # The first layer's accumulators (27 taps of 8-bit codes and 6-bit weights) are then bisected,
    # and the second layer's (6 taps of 5-bit codes and 4-bit weights) enumerated.
    monkeypatch.setattr(batchnorm, "ENUMERATE_LIMIT", 100_000)
    torch.manual_seed(4)
    module = _qat_conv_batchnorm(Int8WeightPerTensorFixedPoint, Uint8ActPerTensorFixedPoint,
                                 Int8ActPerTensorFixedPoint)

    with caplog.at_level("DEBUG", logger="codesign.batchnorm"):
        qonnx, project, status = _convert_qat(module, (1, 3, 8, 8), tmp_path)
    methods = [record.getMessage().split(": ")[1].split()[0] for record in caplog.records
               if record.name == "codesign.batchnorm"]
    sim_status, report = _simulate(project, tmp_path)

    assert methods == ["bisecting", "enumerating"]
    assert len(qonnx.model.get_nodes_by_op_type("BatchNormalization")) == 2
    assert status == 0
    assert sim_status == 0
    assert report["values"] == 20 * 8 * 8 * 4
    assert report["exact_fraction"] == 1.0


@pytest.mark.slow
def test_qat_linear_batchnorm_float_scales_exact(tmp_path):
    from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerTensorFloat, Uint8ActPerTensorFloat

    torch.manual_seed(5)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantLinear(16, 8, bias=False, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=5),
        torch.nn.BatchNorm1d(8),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4, return_quant_tensor=True),
        qnn.QuantLinear(8, 6, bias=True, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=4,
                        bias_quant=Int32Bias),
        torch.nn.BatchNorm1d(6),
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=5),
    )

    qonnx, project, status = _convert_qat(module, (1, 16), tmp_path)
    sim_status, report = _simulate(project, tmp_path, count=50)

    assert len(qonnx.model.get_nodes_by_op_type("BatchNormalization")) == 2
    assert status == 0
    assert sim_status == 0
    assert report["values"] == 50 * 6
    assert report["exact_fraction"] == 1.0


def _batchnorm_quant_model(channels, rank):
    """BatchNormalization -> Relu -> Quant(4-bit unsigned, scale 0.3) with random statistics, one gamma negative."""
    rng = np.random.default_rng(11)
    gamma = rng.normal(size=channels).astype(np.float32)
    gamma[0] = -1.5
    values = {
        "gamma": gamma, "beta": rng.normal(size=channels).astype(np.float32),
        "mean": rng.normal(size=channels).astype(np.float32),
        "var": rng.uniform(0.1, 2.0, size=channels).astype(np.float32),
        "scale": np.float32(0.3), "zero_point": np.float32(0.0), "bits": np.float32(4.0),
    }
    nodes = [
        helper.make_node("BatchNormalization", ["x", "gamma", "beta", "mean", "var"], ["y"], epsilon=1e-5),
        helper.make_node("Relu", ["y"], ["r"]),
        helper.make_node("Quant", ["r", "scale", "zero_point", "bits"], ["q"], domain="qonnx.custom_op.general",
                         signed=0, narrow=0, rounding_mode="ROUND"),
    ]
    shape = [1, channels] + [4] * (rank - 2)
    graph = helper.make_graph(
        nodes, "batchnorm_quant", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("q", onnx.TensorProto.FLOAT, shape)],
        [onnx.numpy_helper.from_array(np.asarray(value), name) for name, value in values.items()],
    )
    return ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


@pytest.mark.parametrize("rank", [2, 4])
def test_replayed_thresholds_bisection_matches_enumeration(rank, monkeypatch):
    model = _batchnorm_quant_model(channels=3, rank=rank)
    nodes = list(model.graph.node)
    params = quant_params(model, nodes[2])
    alphas = [Fraction(3, 64), Fraction(5, 128), Fraction(1, 16)]
    betas = [Fraction(1, 4), Fraction(-3, 8), Fraction(0)]
    replay = batchnorm.ReplayedQuantizer(model, nodes[:2], nodes[2], params, alphas, betas, rank)
    low, high = np.array([-300, -200, -150]), np.array([280, 260, 150])
    levels = range(1, 16)

    enumerated, falling = batchnorm.replayed_thresholds(replay, low, high, levels, "test")
    monkeypatch.setattr(batchnorm, "ENUMERATE_LIMIT", 0)
    bisected, falling_bisected = batchnorm.replayed_thresholds(replay, low, high, levels, "test")

    accumulators = np.stack([np.arange(-300, 281)] * 3, axis=1)
    accumulators = np.clip(accumulators, low, high)
    primed = np.where(falling, -accumulators, accumulators)
    counted = (primed[:, :, None] >= enumerated[None, :, :]).sum(axis=2)
    assert falling.tolist() == [True, False, False]
    assert falling_bisected.tolist() == falling.tolist()
    assert np.array_equal(bisected, enumerated)
    assert np.array_equal(counted, replay.codes(accumulators))

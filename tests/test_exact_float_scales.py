"""Exact lowering of float (non-power-of-two) scales, zero points and bipolar quantizers.

Each case exports a Brevitas model with float-scale quantizers to QONNX,
converts it and C-simulates it on random inputs inside the input quantizer's
range. Quantized outputs must match the reference exactly; an output without
a quantizer must stay within the bound that the project states.
"""

from __future__ import annotations

import json
import random
from fractions import Fraction

import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    ShiftedUint8ActPerTensorFloat,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFloat,
)

from codesign.cli import main
from codesign.export import export
from codesign.reference import QuantParams
from codesign.thresholds import RESCALED_OUTPUT_BOUND_LSB, quant_thresholds, round_half_even_threshold
from exact_support import Exportable as _Exportable, calibrate as _calibrate


def _convert_and_simulate(module, shape, tmp_path, count=20):
    qonnx = export(_Exportable(module, shape), tmp_path / "export")
    project = tmp_path / "project"
    assert main(["-q", "convert", str(qonnx.path), "--out", str(project), "--tb-images", "4"]) == 0
    report_path = tmp_path / "report.json"
    status = main(["-q", "csim", str(project), "--count", str(count), "--json", str(report_path)])
    meta = json.loads((project / "codesign.json").read_text())
    return meta, status, json.loads(report_path.read_text())


def _reference_code(a: int, alpha: Fraction, beta: Fraction, params: QuantParams, relu: bool) -> int:
    """QONNX Quant of alpha * a + beta in exact arithmetic, minus the zero point."""
    value = alpha * a + beta
    if relu:
        value = max(value, Fraction(0))
    zero_point = int(params.zero_point)
    scaled = value / Fraction(float(params.scale)) + zero_point
    code = round(scaled)  # Python rounds a Fraction half to even
    return min(max(code, params.code_min), params.code_max) - zero_point


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("signed,zero_point", [(True, 0), (False, 0), (False, 7)])
def test_thresholds_match_exact_quant(relu, signed, zero_point):
    rng = random.Random(1)
    for _ in range(20):
        params = QuantParams(
            scale=np.float32(rng.uniform(0.01, 0.5)), zero_point=np.float32(zero_point), bit_width=4.0,
            signed=signed, narrow=False, rounding_mode="ROUND",
        )
        alphas = [Fraction(float(np.float32(rng.uniform(1e-3, 0.05)))) for _ in range(3)]
        betas = [Fraction(float(np.float32(rng.uniform(-1, 1)))) for _ in range(3)]
        thresholds, offset = quant_thresholds(alphas, betas, params, relu, "test")
        for channel in range(3):
            for a in range(-400, 400):
                got = offset + int(sum(1 for t in thresholds[channel] if a >= t))
                assert got == _reference_code(a, alphas[channel], betas[channel], params, relu)


def test_threshold_ties_round_half_to_even():
    # alpha * A / scale = A / 2 puts every odd A on a tie.
    alpha, scale = Fraction(1, 8), Fraction(1, 4)
    assert round_half_even_threshold(1, alpha, Fraction(0), scale, 0) == 2  # 0.5 rounds to 0, 1.0 to 1
    assert round_half_even_threshold(2, alpha, Fraction(0), scale, 0) == 3  # 1.5 rounds to 2
    assert round_half_even_threshold(3, alpha, Fraction(0), scale, 0) == 6  # 2.5 rounds to 2, 3.0 to 3


@pytest.mark.slow
@pytest.mark.parametrize("bits", [4, 8])
def test_linear_float_scales_exact(bits, tmp_path):
    torch.manual_seed(bits)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantLinear(16, 8, bias=True, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=bits,
                        return_quant_tensor=True),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=bits),
    )
    _calibrate(module, (1, 16))

    meta, status, report = _convert_and_simulate(module, (1, 16), tmp_path)

    assert meta["output"]["scale"] != 2.0 ** round(np.log2(meta["output"]["scale"]))
    assert status == 0
    assert report["exact_fraction"] == 1.0


@pytest.mark.slow
def test_conv_per_channel_scales_exact(tmp_path):
    torch.manual_seed(3)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantConv2d(3, 6, 3, padding=1, bias=True, weight_quant=Int8WeightPerChannelFloat,
                        return_quant_tensor=True),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=6),
    )
    _calibrate(module, (1, 3, 8, 8))

    meta, status, report = _convert_and_simulate(module, (1, 3, 8, 8), tmp_path)

    assert status == 0
    assert report["values"] == 20 * 8 * 8 * 6
    assert report["exact_fraction"] == 1.0


@pytest.mark.slow
def test_two_conv_default_quantizers_exact(tmp_path):
    torch.manual_seed(4)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(return_quant_tensor=True),
        qnn.QuantConv2d(3, 8, 3, padding=1, bias=True, return_quant_tensor=True),
        qnn.QuantReLU(return_quant_tensor=True),
        torch.nn.MaxPool2d(2),
        qnn.QuantConv2d(8, 4, 3, padding=1, bias=True, return_quant_tensor=True),
        qnn.QuantReLU(return_quant_tensor=True),
    )
    _calibrate(module, (1, 3, 8, 8))

    _, status, report = _convert_and_simulate(module, (1, 3, 8, 8), tmp_path)

    assert status == 0
    assert report["values"] == 20 * 4 * 4 * 4
    assert report["exact_fraction"] == 1.0


@pytest.mark.slow
def test_bipolar_weights_exact(tmp_path):
    torch.manual_seed(5)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantConv2d(3, 6, 3, padding=1, bias=True, weight_quant=SignedBinaryWeightPerTensorConst,
                        return_quant_tensor=True),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4),
    )
    _calibrate(module, (1, 3, 6, 6))

    qonnx_ops = {node.op_type for node in export(_Exportable(module, (1, 3, 6, 6)), tmp_path / "ops").model.graph.node}
    _, status, report = _convert_and_simulate(module, (1, 3, 6, 6), tmp_path)

    assert "BipolarQuant" in qonnx_ops
    assert status == 0
    assert report["exact_fraction"] == 1.0


@pytest.mark.slow
def test_zero_point_activation_exact(tmp_path):
    torch.manual_seed(6)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantLinear(12, 10, bias=True, weight_quant=Int8WeightPerTensorFloat, return_quant_tensor=True),
        qnn.QuantIdentity(act_quant=ShiftedUint8ActPerTensorFloat, return_quant_tensor=True),
        # Brevitas cannot carry a zero point through an accumulator, so this layer returns a plain tensor.
        qnn.QuantLinear(10, 6, bias=True, weight_quant=Int8WeightPerTensorFloat, return_quant_tensor=False),
        qnn.QuantIdentity(act_quant=ShiftedUint8ActPerTensorFloat, return_quant_tensor=True),
    )
    _calibrate(module, (1, 12))
    zero_points = [float(m.act_quant.zero_point()) for m in (module[2], module[4])]

    _, status, report = _convert_and_simulate(module, (1, 12), tmp_path)

    assert all(zero_point != 0 for zero_point in zero_points)
    assert status == 0
    assert report["exact_fraction"] == 1.0


@pytest.mark.slow
def test_float_output_within_stated_bound(tmp_path):
    # The last Linear (a MatMul plus a bias Add) has no output quantizer.
    torch.manual_seed(7)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantLinear(12, 10, bias=True, weight_quant=Int8WeightPerChannelFloat, return_quant_tensor=True),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=6, return_quant_tensor=True),
        qnn.QuantLinear(10, 4, bias=True, weight_quant=Int8WeightPerTensorFloat, return_quant_tensor=False),
    )
    _calibrate(module, (1, 12))

    meta, status, report = _convert_and_simulate(module, (1, 12), tmp_path)
    precision_table = (tmp_path / "project" / "precision.md").read_text()

    assert meta["output"]["error_bound_lsb"] == RESCALED_OUTPUT_BOUND_LSB
    assert "round half to even" in precision_table
    assert status == 0
    assert report["error_bound_lsb"] == RESCALED_OUTPUT_BOUND_LSB
    assert report["within_bound_values"] == report["values"]
    assert report["max_abs_lsb"] <= RESCALED_OUTPUT_BOUND_LSB
    assert report["passed"] is True


@pytest.mark.slow
def test_bipolar_activation_exact(tmp_path):
    torch.manual_seed(10)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantLinear(8, 6, bias=True, weight_quant=Int8WeightPerTensorFloat, return_quant_tensor=False),
        qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True),
        qnn.QuantLinear(6, 4, bias=True, weight_quant=Int8WeightPerTensorFloat, return_quant_tensor=False),
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
    )
    _calibrate(module, (1, 8))

    qonnx_ops = [node.op_type for node in export(_Exportable(module, (1, 8)), tmp_path / "ops").model.graph.node]
    _, status, report = _convert_and_simulate(module, (1, 8), tmp_path)

    assert "BipolarQuant" in qonnx_ops
    assert status == 0
    assert report["exact_fraction"] == 1.0


@pytest.mark.slow
def test_input_zero_point_rejected_with_node_name(tmp_path, capsys):
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=ShiftedUint8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantLinear(8, 4, bias=True, weight_quant=Int8WeightPerTensorFloat, return_quant_tensor=False),
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
    )
    _calibrate(module, (1, 8))
    qonnx = export(_Exportable(module, (1, 8)), tmp_path / "export")

    status = main(["convert", str(qonnx.path), "--out", str(tmp_path / "project")])
    error = capsys.readouterr().err

    assert status == 2
    assert "(Quant)" in error
    assert "input quantizer needs one scale and zero point 0" in error
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "project").exists()


@pytest.mark.slow
def test_float_scale_detector_within_bound(tmp_path):
    from quantize.detector import DetectorConfig, TinyYolo, save_checkpoint
    from quantize.ptq import calibrate

    torch.manual_seed(8)
    config = DetectorConfig(channels=(4, 8), final_channels=8, scaling="float")
    model = TinyYolo(config)
    pixels = np.random.default_rng(8).integers(0, 256, size=(16, 96, 96, 3), dtype=np.uint8)
    calibrate(model, pixels, batch_size=16)
    checkpoint = tmp_path / "float.pt"
    save_checkpoint(model, checkpoint)
    project = tmp_path / "project"

    assert main(["-q", "convert", str(checkpoint), "--out", str(project), "--tb-images", "2"]) == 0
    status = main(["-q", "csim", str(project), "--count", "4", "--json", str(tmp_path / "r.json")])
    report = json.loads((tmp_path / "r.json").read_text())

    assert status == 0
    assert report["within_bound_values"] == report["values"]
    assert report["max_abs_lsb"] <= RESCALED_OUTPUT_BOUND_LSB
    assert report["detection_differences"]["images"] == 4


@pytest.mark.slow
def test_relu_pool_conv_output_bound(tmp_path):
    # Conv -> ReLU -> MaxPool -> Quant moves the pooling onto the accumulator, and the final
    # 1x1 convolution has no output quantizer, so its output is rounded.
    torch.manual_seed(9)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantConv2d(3, 4, 3, padding=1, bias=True, weight_quant=Int8WeightPerTensorFloat,
                        return_quant_tensor=False),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
        qnn.QuantConv2d(4, 5, 1, bias=True, weight_quant=Int8WeightPerChannelFloat, return_quant_tensor=False),
    )
    _calibrate(module, (1, 3, 6, 6))

    meta, status, report = _convert_and_simulate(module, (1, 3, 6, 6), tmp_path)

    assert meta["output"]["error_bound_lsb"] == RESCALED_OUTPUT_BOUND_LSB
    assert status == 0
    assert report["within_bound_values"] == report["values"]
    assert report["max_abs_lsb"] <= RESCALED_OUTPUT_BOUND_LSB

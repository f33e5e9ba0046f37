"""Exactness on small models built from the fault kinds users of hls4ml report.

Each case exports a Brevitas model to QONNX, converts it from the QONNX file,
and C-simulates it on random inputs inside the input quantizer's range. Every
output value must match the reference exactly.
"""

from __future__ import annotations

import json

import brevitas.nn as qnn
import onnx
import pytest
import torch
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias, Uint8ActPerTensorFixedPoint

from codesign.cli import main
from codesign.export import export
from exact_support import Exportable as _Exportable, calibrate as _calibrate

pytestmark = pytest.mark.slow


def _weight_quant(narrow: bool):
    return type("WeightQuant", (Int8WeightPerTensorFixedPoint,), {"narrow_range": narrow})


def _convert_and_simulate(module, shape, tmp_path, count=20):
    qonnx = export(_Exportable(module, shape), tmp_path / "export")
    project = tmp_path / "project"
    assert main(["-q", "convert", str(qonnx.path), "--out", str(project), "--tb-images", "4"]) == 0
    report_path = tmp_path / "report.json"
    status = main(["-q", "csim", str(project), "--count", str(count), "--json", str(report_path)])
    return qonnx, status, json.loads(report_path.read_text())


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("narrow", [False, True])
def test_linear_weight_narrow_range(bits, narrow, tmp_path):
    torch.manual_seed(bits)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantLinear(16, 8, bias=True, weight_quant=_weight_quant(narrow), weight_bit_width=bits,
                        bias_quant=Int16Bias, return_quant_tensor=True),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=bits),
    )
    _calibrate(module, (1, 16))

    qonnx, status, report = _convert_and_simulate(module, (1, 16), tmp_path)

    weight_quant = [n for n in qonnx.model.graph.node
                    if n.op_type == "Quant" and qonnx.model.get_initializer(n.input[0]) is not None
                    and qonnx.model.get_initializer(n.input[0]).ndim == 2][0]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in weight_quant.attribute}
    assert attributes["signed"] == 1
    assert attributes.get("narrow", 0) == int(narrow)
    assert float(qonnx.model.get_initializer(weight_quant.input[3])) == bits
    assert status == 0
    assert report["exact_fraction"] == 1.0


@pytest.mark.parametrize("bias", [False, True])
def test_conv_with_and_without_bias(bias, tmp_path):
    torch.manual_seed(1)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantConv2d(3, 4, 3, padding=1, bias=bias, weight_quant=Int8WeightPerTensorFixedPoint,
                        weight_bit_width=5, bias_quant=Int16Bias if bias else None, return_quant_tensor=True),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=5),
    )
    _calibrate(module, (1, 3, 10, 10))

    _, status, report = _convert_and_simulate(module, (1, 3, 10, 10), tmp_path)

    assert status == 0
    assert report["values"] == 20 * 10 * 10 * 4
    assert report["exact_fraction"] == 1.0


def test_unsupported_op_rejected_with_node_name(tmp_path, capsys):
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=False),
        torch.nn.Sigmoid(),
    )
    _calibrate(module, (1, 8))
    qonnx = export(_Exportable(module, (1, 8)), tmp_path / "export")

    status = main(["convert", str(qonnx.path), "--out", str(tmp_path / "project")])
    error = capsys.readouterr().err

    assert status == 2
    assert "(Sigmoid)" in error
    assert "supported ops" in error
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "project").exists()


def test_resource_strategy_with_reuse_exact(tmp_path):
    torch.manual_seed(2)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantConv2d(3, 8, 3, padding=1, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                        weight_bit_width=6, bias_quant=Int16Bias, return_quant_tensor=True),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=6),
    )
    _calibrate(module, (1, 3, 8, 8))
    qonnx = export(_Exportable(module, (1, 3, 8, 8)), tmp_path / "export")
    project = tmp_path / "project"

    assert main(["-q", "convert", str(qonnx.path), "--out", str(project), "--strategy", "Resource",
                 "--reuse-factor", "3", "--tb-images", "4"]) == 0
    parameters = (project / "hls" / "firmware" / "parameters.h").read_text()
    status = main(["-q", "csim", str(project), "--count", "10", "--json", str(tmp_path / "r.json")])

    assert "reuse_factor = 3" in parameters
    assert status == 0
    assert json.loads((tmp_path / "r.json").read_text())["exact_fraction"] == 1.0

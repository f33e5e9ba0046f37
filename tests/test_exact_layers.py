"""Exactness of the detector layers and the two CNN peer models.

Each small model is a Brevitas module with power-of-two quantizers. It is
exported to QONNX, converted from the QONNX file and C-simulated on random
inputs inside the input quantizer's range. Every output value must match the
reference exactly. Several layers share one model so that one conversion
and one g++ build cover them. The peer models take about 60 s each
(conversion and 20 images on 2 cores).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias, Uint8ActPerTensorFixedPoint

from codesign import tensorfile
from codesign.cli import main
from codesign.export import export
from exact_support import Exportable as _Exportable, calibrate as _calibrate, simulate as _simulate

pytestmark = pytest.mark.slow

PEER_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "peer-models"


def _act(bits=8, signed=True, tensor=False):
    quant = Int8ActPerTensorFixedPoint if signed else Uint8ActPerTensorFixedPoint
    return qnn.QuantIdentity(act_quant=quant, bit_width=bits, return_quant_tensor=tensor)


def _conv(cin, cout, kernel, stride=1, padding=0, groups=1, bits=6):
    return qnn.QuantConv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=True,
                           weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=bits,
                           bias_quant=Int16Bias, return_quant_tensor=True)


def _convert(module, shape, tmp_path, calibration_scale=1.0):
    _calibrate(module, shape, calibration_scale)
    qonnx = export(_Exportable(module, shape), tmp_path / "export")
    project = tmp_path / "project"
    status = main(["-q", "convert", str(qonnx.path), "--out", str(project), "--tb-images", "2"])
    return project, status


def _run_codes(project, codes: np.ndarray) -> np.ndarray:
    """Run design-order input codes through the project's built testbench; return the output codes."""
    work = project / "csim"
    tensorfile.write(work / "custom_inputs.bin", codes)
    result = subprocess.run([str(work / "codesign_tb"), str(work / "custom_inputs.bin"), "0", str(len(codes)),
                             str(work / "custom_outputs.bin")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return tensorfile.read(work / "custom_outputs.bin")


def test_conv_kernels_strides_paddings(tmp_path):
    torch.manual_seed(3)
    module = torch.nn.Sequential(
        _act(tensor=True),
        _conv(3, 4, 5, padding="same"),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=6, return_quant_tensor=True),
        _conv(4, 4, 3, stride=2, padding=1),
        _act(6, tensor=True),
        _conv(4, 5, 1),
        _act(6, tensor=True),
        _conv(5, 4, 3, stride=2),
        _act(8),
    )
    project, status = _convert(module, (1, 3, 11, 11), tmp_path)
    assert status == 0

    status, report = _simulate(project, tmp_path)

    assert status == 0
    assert report["values"] == 20 * 2 * 2 * 4
    assert report["exact_fraction"] == 1.0


def test_relu6_depthwise_leaky_pointwise(tmp_path):
    torch.manual_seed(4)
    module = torch.nn.Sequential(
        _act(tensor=True),
        _conv(3, 4, 3, padding=1),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=4, max_val=6.0, return_quant_tensor=True),
        _conv(4, 4, 3, padding=1, groups=4),
        _act(8, tensor=False),
        torch.nn.LeakyReLU(0.125),
        _act(6, tensor=True),
        _conv(4, 6, 1),
        _act(8),
    )
    project, status = _convert(module, (1, 3, 8, 8), tmp_path)
    assert status == 0
    precision = (project / "precision.md").read_text()

    status, report = _simulate(project, tmp_path)

    assert "DepthwiseConv2D" in precision
    assert "alpha 0.125" in precision
    assert status == 0
    assert report["exact_fraction"] == 1.0


def test_leaky_relu_wide_alpha_rejected(tmp_path, capsys):
    module = torch.nn.Sequential(_act(tensor=False), torch.nn.LeakyReLU(0.1), _act(8))
    _calibrate(module, (1, 8))
    qonnx = export(_Exportable(module, (1, 8)), tmp_path / "export")

    status = main(["convert", str(qonnx.path), "--out", str(tmp_path / "project")])
    error = capsys.readouterr().err

    assert status == 2
    assert "LeakyReLU" in error
    assert "float32 reference rounds" in error
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "project").exists()


class _Branches(torch.nn.Module):
    """Residual add of branches with different LSBs, channel concat and nearest x2 upsample."""

    def __init__(self):
        super().__init__()
        self.input = _act(8, tensor=True)
        self.left = torch.nn.Sequential(_conv(3, 4, 3, padding=1), _act(4))
        self.right = torch.nn.Sequential(_conv(3, 4, 1), _act(8))
        self.sum = _act(8)
        self.side = torch.nn.Sequential(_conv(3, 2, 1), _act(6))
        self.upsample = torch.nn.Upsample(scale_factor=2, mode="nearest")
        self.head = torch.nn.Sequential(_act(8, tensor=True), _conv(6, 3, 1), _act(8))

    def forward(self, x):
        x = self.input(x)
        total = self.sum(self.left(x) + self.right(x))
        joined = torch.cat([total, self.side(x)], dim=1)
        return self.head(self.upsample(joined))


def test_residual_add_concat_upsample(tmp_path):
    torch.manual_seed(5)
    project, status = _convert(_Branches(), (1, 3, 6, 6), tmp_path)
    assert status == 0
    precision = (project / "precision.md").read_text()

    status, report = _simulate(project, tmp_path)

    assert "| Concat" in precision
    assert "nearest resize" in precision
    assert status == 0
    assert report["values"] == 20 * 12 * 12 * 3
    assert report["exact_fraction"] == 1.0


def test_upsample_with_empty_roi(tmp_path):
    module = torch.nn.Sequential(_act(8), torch.nn.Upsample(scale_factor=2, mode="nearest"), _act(8))
    _calibrate(module, (1, 5, 25, 25))
    qonnx = export(_Exportable(module, (1, 5, 25, 25)), tmp_path / "export")
    # torch 2.13 omits the roi input; other exporters write an empty initializer, as hls4ml's example models do.
    resize = next(node for node in qonnx.model.graph.node if node.op_type == "Resize")
    qonnx.model.set_initializer("empty_roi", np.zeros(0, dtype=np.float32))
    resize.input[1] = "empty_roi"
    qonnx.model.save(str(tmp_path / "empty_roi.onnx"))
    project = tmp_path / "project"

    status = main(["-q", "convert", str(tmp_path / "empty_roi.onnx"), "--out", str(project), "--tb-images", "2"])
    assert status == 0
    status, report = _simulate(project, tmp_path, count=4)

    assert status == 0
    assert report["values"] == 4 * 50 * 50 * 5
    assert report["exact_fraction"] == 1.0


def test_upsample_repeats_each_value(tmp_path):
    module = torch.nn.Sequential(_act(8), torch.nn.Upsample(scale_factor=2, mode="nearest"))
    # Calibrated on values up to about 8 * 3, so 1..4 are exact codes of the input quantizer.
    project, status = _convert(module, (1, 1, 2, 2), tmp_path, calibration_scale=8.0)
    assert status == 0
    status, report = _simulate(project, tmp_path, count=4)
    meta = json.loads((project / "codesign.json").read_text())
    in_frac, out_frac = meta["input"]["frac"], meta["output"]["frac"]
    codes = np.array([[1, 2, 3, 4]]) << in_frac

    got = np.ldexp(_run_codes(project, codes).astype(np.float64), -out_frac).reshape(4, 4)

    assert status == 0
    assert report["exact_fraction"] == 1.0
    assert got.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]


def test_max_pool_strides_and_same_padding(tmp_path):
    torch.manual_seed(6)
    module = torch.nn.Sequential(
        _act(tensor=True),
        _conv(3, 4, 3, padding=1),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=6, return_quant_tensor=False),
        torch.nn.MaxPool2d(2, 2),
        # 2x2 stride-2 'same' pooling of a 5x5 input: 3x3 outputs, the last row and column half padded.
        torch.nn.MaxPool2d(2, 2, ceil_mode=True),
        # Tiny-YOLO's stride-1 'same' pooling.
        torch.nn.ZeroPad2d((0, 1, 0, 1)),
        torch.nn.MaxPool2d(2, 1),
        _act(6, signed=False, tensor=True),
        torch.nn.Flatten(),
        qnn.QuantLinear(36, 5, bias=True, weight_quant=Int8WeightPerTensorFixedPoint, weight_bit_width=6,
                        bias_quant=Int16Bias, return_quant_tensor=True),
        _act(8),
    )
    project, status = _convert(module, (1, 3, 10, 10), tmp_path)
    assert status == 0

    status, report = _simulate(project, tmp_path)

    assert status == 0
    assert report["values"] == 20 * 5
    assert report["exact_fraction"] == 1.0


def test_average_and_global_average_pool(tmp_path):
    module = torch.nn.Sequential(
        _act(10),
        torch.nn.AvgPool2d(2),
        _act(10),
        # Global average over 8x8x3: 64 sums of 10-bit values must not saturate.
        torch.nn.AdaptiveAvgPool2d(1),
        _act(10),
    )
    project, status = _convert(module, (1, 3, 16, 16), tmp_path, calibration_scale=4.0)
    assert status == 0
    precision = (project / "precision.md").read_text()

    status, report = _simulate(project, tmp_path)

    assert "division by 64" in precision
    assert status == 0
    assert report["values"] == 20 * 3
    assert report["exact_fraction"] == 1.0


def test_average_pool_odd_windows(tmp_path):
    module = torch.nn.Sequential(
        _act(8),
        torch.nn.AvgPool2d(3),
        _act(6),
        # 3x3 = 9 values: the average is no binary fraction, so the quantizer after it rounds.
        torch.nn.AdaptiveAvgPool2d(1),
        _act(8),
    )
    project, status = _convert(module, (1, 4, 9, 9), tmp_path, calibration_scale=2.0)
    assert status == 0

    status, report = _simulate(project, tmp_path, count=50)

    assert status == 0
    assert report["values"] == 50 * 4
    assert report["exact_fraction"] == 1.0


def test_batch_norm_without_quantizer_rejected(tmp_path, capsys):
    # A batch normalization followed by a quantizer lowers to thresholds (tests/test_exact_batchnorm.py).
    module = torch.nn.Sequential(
        _act(tensor=True),
        _conv(3, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
    )
    _calibrate(module, (1, 3, 6, 6))
    qonnx = export(_Exportable(module, (1, 3, 6, 6)), tmp_path / "export")

    status = main(["convert", str(qonnx.path), "--out", str(tmp_path / "project")])
    error = capsys.readouterr().err

    assert status == 2
    assert "(BatchNormalization)" in error
    assert "needs a quantizer after it" in error
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "project").exists()


class _ChannelShuffle(torch.nn.Module):
    """ShuffleNet's channel shuffle, written as PyTorch models write it."""

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


@pytest.mark.parametrize("groups", [2, 4])
def test_channel_shuffle_between_convs_exact(groups, tmp_path):
    torch.manual_seed(10 + groups)
    module = torch.nn.Sequential(
        _act(tensor=True),
        _conv(3, 8, 3, padding=1),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=6, return_quant_tensor=True),
        _ChannelShuffle(groups),
        _conv(8, 4, 1),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=6),
    )
    project, status = _convert(module, (1, 3, 5, 5), tmp_path)
    assert status == 0
    precision = (project / "precision.md").read_text()
    top_function = (project / "hls" / "firmware" / "myproject.cpp").read_text()

    status, report = _simulate(project, tmp_path)

    assert "channel permutation" in precision
    assert "codesign_channel_permute" in top_function
    assert status == 0
    assert report["values"] == 20 * 5 * 5 * 4
    assert report["exact_fraction"] == 1.0


def test_channel_shuffle_permutes_channels(tmp_path):
    # A 1x1 max pool passes values through in the input type and keeps the output channels-last.
    module = torch.nn.Sequential(_act(8), _ChannelShuffle(4), torch.nn.MaxPool2d(1))
    shape = (1, 8, 2, 2)
    project, status = _convert(module, shape, tmp_path, calibration_scale=8.0)
    assert status == 0
    status, report = _simulate(project, tmp_path, count=4)
    meta = json.loads((project / "codesign.json").read_text())
    codes_nchw = np.random.default_rng(0).permutation(np.arange(-16, 16)).reshape(shape)
    expected = _ChannelShuffle(4)(torch.from_numpy(codes_nchw)).numpy().transpose(0, 2, 3, 1)

    got = _run_codes(project, codes_nchw.transpose(0, 2, 3, 1).reshape(1, -1))

    assert status == 0
    assert report["exact_fraction"] == 1.0
    assert meta["input"]["frac"] == meta["output"]["frac"]
    # Output channel c = i * groups + j comes from input channel j * (channels / groups) + i.
    assert got.reshape(expected.shape).tolist() == expected.tolist()


def test_spatial_transpose_rejected(tmp_path, capsys):
    class SpatialTranspose(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.input = _act(8)
            self.output = _act(8)

        def forward(self, x):
            return self.output(self.input(x).transpose(2, 3))

    module = SpatialTranspose()
    _calibrate(module, (1, 4, 4, 4))
    qonnx = export(_Exportable(module, (1, 4, 4, 4)), tmp_path / "export")

    status = main(["convert", str(qonnx.path), "--out", str(tmp_path / "project")])
    error = capsys.readouterr().err

    assert status == 2
    assert "(Transpose)" in error
    assert "cannot transpose a streamed tensor" in error
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "project").exists()


def _peer_model(name, tmp_path, count):
    path = PEER_MODELS / f"{name}.onnx"
    if not path.is_file():
        pytest.skip(f"peer model {path} not present")
    project = tmp_path / "project"
    assert main(["-q", "convert", str(path), "--out", str(project), "--tb-images", "1"]) == 0
    return _simulate(project, tmp_path, count=count)


def test_peer_separable_conv_model(tmp_path):
    status, report = _peer_model("separable_conv_model_ch_last", tmp_path, count=20)

    assert status == 0
    assert report["values"] == 20 * 512 * 512 * 16
    assert report["exact_fraction"] == 1.0


def test_peer_branched_model(tmp_path):
    status, report = _peer_model("branched_model_ch_last", tmp_path, count=20)

    assert status == 0
    assert report["values"] == 20 * 256 * 256 * 2
    assert report["exact_fraction"] == 1.0

"""The onnxruntime reference equals qonnx's own executor on a Brevitas model."""

from __future__ import annotations

import numpy as np
import pytest
import qonnx.core.onnx_exec as oxe
import torch

from codesign.export import export
from codesign.quantize import QuantizedModel
from codesign.reference import Reference
from quantize.detector import DetectorConfig, TinyYolo


@pytest.fixture(scope="module")
def small_qonnx(tmp_path_factory):
    torch.manual_seed(3)
    config = DetectorConfig(image_size=32, channels=(4, 8), final_channels=8, weight_bits=4, act_bits=3)
    module = TinyYolo(config)
    module.train()
    with torch.no_grad():
        for _ in range(3):
            module(torch.rand(8, 3, 32, 32))
    module.eval()
    quantized = QuantizedModel(module=module, config=config, source="random")
    return export(quantized, tmp_path_factory.mktemp("small")), module


def test_reference_equals_qonnx_executor(small_qonnx):
    qonnx, _ = small_qonnx
    rng = np.random.default_rng(0)
    inputs = (rng.integers(0, 256, size=(3, 3, 32, 32)) / 256).astype(np.float32)

    ours = Reference(qonnx.model).run(inputs)
    theirs = np.concatenate([
        oxe.execute_onnx(qonnx.model, {qonnx.input_name: x[None]})[qonnx.output_name] for x in inputs
    ])

    np.testing.assert_array_equal(ours, theirs)


def test_reference_equals_brevitas(small_qonnx):
    qonnx, module = small_qonnx
    rng = np.random.default_rng(1)
    inputs = (rng.integers(0, 256, size=(3, 3, 32, 32)) / 256).astype(np.float32)

    ours = Reference(qonnx.model).run(inputs)
    with torch.no_grad():
        brevitas = module(torch.from_numpy(inputs)).numpy()

    np.testing.assert_array_equal(ours, brevitas)

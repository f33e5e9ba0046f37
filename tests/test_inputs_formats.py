"""Model sources of ``codesign convert``: pkg.module:factory modules, QCDQ files, PTQ, and peer ONNX models.

The slow tests convert each source and C-simulate 20 random inputs; every
output value must match the reference exactly. The fast tests check the
input errors and the host-side split of the peer models without compiling.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import brevitas.nn as qnn
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from brevitas.export import export_onnx_qcdq
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFixedPoint,
    Int32Bias,
    Uint8ActPerTensorFixedPoint,
)

from codesign.cli import main
from codesign.errors import InputError
from codesign.export import load_qonnx
from codesign.graph_passes import batchnorm_to_thresholds, parse_fixed_type, prepare_onnx
from codesign.reference import Reference
from codesign.sources import is_factory_spec

PEER_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "peer-models"
needs_peer_models = pytest.mark.skipif(not PEER_MODELS.is_dir(), reason=f"peer models not found in {PEER_MODELS}")

# A Brevitas module and a float module that the factory tests import from the current folder.
QUANT_MODULE = """
import brevitas.nn as qnn
import torch
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int32Bias
from brevitas.quant import Uint8ActPerTensorFixedPoint


class Small(torch.nn.Sequential):
    input_shape = (1, 3, 8, 8)


def build():
    return Small(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantConv2d(3, 4, 3, padding=1, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                        weight_bit_width=5, bias_quant=Int32Bias, return_quant_tensor=True),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=5, return_quant_tensor=True),
        qnn.QuantConv2d(4, 3, 1, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                        weight_bit_width=6, bias_quant=Int32Bias, return_quant_tensor=False),
    )


def not_a_module():
    return 42
"""

FLOAT_MODULE = """
import torch


def build():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 5, 1),
    )
"""


def _calibrate(module, shape):
    torch.manual_seed(0)
    module.train()
    with torch.no_grad():
        for _ in range(4):
            module(torch.randn(32, *shape[1:]))
    module.eval()
    return module


@pytest.fixture
def module_folder(tmp_path, monkeypatch):
    """A current folder with importable modules of unique names; sys.path is restored afterwards."""
    name = f"user_models_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(QUANT_MODULE))
    (tmp_path / f"{name}_float.py").write_text(textwrap.dedent(FLOAT_MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path, name


def _quant_state_dict(folder: Path, name: str) -> Path:
    """Build the Brevitas module of the factory, calibrate it, and save its state dict."""
    sys.path.insert(0, str(folder))
    module = __import__(name).build()
    _calibrate(module, (1, 3, 8, 8))
    path = folder / "weights.pt"
    torch.save(module.state_dict(), path)
    return path


def _convert_error(argv, capsys) -> str:
    status = main(argv)
    error = capsys.readouterr().err
    assert status == 2
    assert len(error.strip().splitlines()) == 1
    return error


def _simulate(project: Path, tmp_path: Path) -> tuple[int, dict]:
    report_path = tmp_path / "report.json"
    status = main(["-q", "csim", str(project), "--count", "20", "--json", str(report_path)])
    return status, json.loads(report_path.read_text())


# ---- fast: specs, types and input errors -------------------------------------------------


def test_factory_spec_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkg.mod:build").write_text("a file of that name")

    assert is_factory_spec("models:build")
    assert is_factory_spec("pkg.sub.models:make_net")
    assert not is_factory_spec("model.onnx")
    assert not is_factory_spec("pkg.models:")
    assert not is_factory_spec("pkg.models:build:extra")
    assert not is_factory_spec("pkg.mod:build")


def test_fixed_type_parsing():
    assert parse_fixed_type("fixed<16,6>") == (16, 10, True)
    assert parse_fixed_type("ufixed<8,0>") == (8, 8, False)
    assert parse_fixed_type(" fixed< 4 , 6 > ") == (4, -2, True)
    with pytest.raises(InputError, match="invalid fixed-point type"):
        parse_fixed_type("ap_fixed<16,6>")
    with pytest.raises(InputError, match="between 2 and 32"):
        parse_fixed_type("fixed<40,6>")


def test_module_not_importable_rejected(tmp_path, capsys, module_folder):
    error = _convert_error(["convert", "no_such_package.models:build", "--out", str(tmp_path / "p")], capsys)

    assert "cannot import module 'no_such_package.models'" in error
    assert not (tmp_path / "p").exists()


def test_factory_missing_rejected(tmp_path, capsys, module_folder):
    _, name = module_folder

    error = _convert_error(["convert", f"{name}:no_factory", "--out", str(tmp_path / "p")], capsys)

    assert f"has no attribute 'no_factory'" in error
    assert not (tmp_path / "p").exists()


def test_factory_returning_non_module_rejected(tmp_path, capsys, module_folder):
    _, name = module_folder

    error = _convert_error(["convert", f"{name}:not_a_module", "--out", str(tmp_path / "p")], capsys)

    assert "returned int, not a torch.nn.Module" in error


def test_state_dict_key_mismatch_rejected(tmp_path, capsys, module_folder):
    _, name = module_folder
    state = tmp_path / "other.pt"
    torch.save({"features.0.weight": torch.zeros(2, 2)}, state)

    error = _convert_error(["convert", f"{name}:build", "--state-dict", str(state), "--out", str(tmp_path / "p")],
                           capsys)

    assert "state dict does not fit" in error
    assert "unexpected keys 1 (features.0.weight)" in error
    assert "missing keys" in error
    assert not (tmp_path / "p").exists()


def test_state_dict_shape_mismatch_rejected(tmp_path, capsys, module_folder):
    folder, name = module_folder
    state = torch.load(_quant_state_dict(folder, name))
    state["1.weight"] = torch.zeros(4, 3, 5, 5)
    torch.save(state, tmp_path / "wrong.pt")

    error = _convert_error(["convert", f"{name}:build", "--state-dict", str(tmp_path / "wrong.pt"),
                            "--out", str(tmp_path / "p")], capsys)

    assert "state dict does not fit" in error
    assert "size mismatch for 1.weight" in error


def test_float_module_needs_calibrate(tmp_path, capsys, module_folder):
    _, name = module_folder

    error = _convert_error(["convert", f"{name}_float:build", "--input-shape", "1,3,8,8",
                            "--out", str(tmp_path / "p")], capsys)

    assert "no Brevitas quantizers; pass --calibrate DIR" in error


def test_unknown_input_shape_rejected(tmp_path, capsys, module_folder):
    _, name = module_folder

    error = _convert_error(["convert", f"{name}_float:build", "--out", str(tmp_path / "p")], capsys)

    assert "the input shape is unknown; pass --input-shape" in error


def test_invalid_input_shape_rejected(tmp_path, capsys, module_folder):
    _, name = module_folder

    error = _convert_error(["convert", f"{name}:build", "--input-shape", "1,3,x", "--out", str(tmp_path / "p")],
                           capsys)

    assert "invalid --input-shape '1,3,x'" in error


def test_module_options_need_module_source(tmp_path, capsys):
    error = _convert_error(["convert", "--state-dict", "w.pt", "--out", str(tmp_path / "p")], capsys)

    assert "apply only to a pkg.module:factory model" in error


def test_calibration_folder_without_images_rejected(tmp_path, capsys, module_folder):
    _, name = module_folder
    (tmp_path / "empty").mkdir()

    error = _convert_error(["convert", f"{name}_float:build", "--input-shape", "1,3,8,8", "--calibrate",
                            str(tmp_path / "empty"), "--out", str(tmp_path / "p")], capsys)

    assert "contains no images" in error


def _run_host_model(model, array: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: array})[0]


@needs_peer_models
@pytest.mark.parametrize(
    ("name", "pre_ops", "post_ops"),
    [
        ("tfc_2w2a", ["Reshape", "Mul", "Sub"], ["Sub", "Div", "Mul", "Add"]),
        ("jet_tagging_qkeras_3layer", None, ["Softmax"]),
    ],
)
def test_peer_host_steps_compose_to_original(name, pre_ops, post_ops):
    original = load_qonnx(PEER_MODELS / f"{name}.onnx").model
    prepared, preparation = prepare_onnx(load_qonnx(PEER_MODELS / f"{name}.onnx").model, "fixed<16,6>")
    steps = {step.role: step for step in preparation.host_steps}
    shape = original.get_tensor_shape(original.graph.input[0].name)
    rng = np.random.default_rng(0)
    # On-grid inputs. The TFC input is a pixel value in [0, 1], and the jet tagger gets an added fixed<16,6> quantizer.
    if name == "tfc_2w2a":
        inputs = rng.integers(0, 256, size=(8, *shape[1:])).astype(np.float32) / 255.0
    else:
        inputs = np.ldexp(rng.integers(-4096, 4096, size=(8, *shape[1:])), -10).astype(np.float32)

    expected = Reference(original).run(inputs)
    design_inputs = inputs if pre_ops is None else np.stack([_run_host_model(steps["preprocess"].model, x[None])[0]
                                                              for x in inputs])
    design_outputs = Reference(prepared).run(design_inputs)
    composed = np.stack([_run_host_model(steps["postprocess"].model, y[None])[0] for y in design_outputs])

    assert (steps["preprocess"].ops if "preprocess" in steps else None) == pre_ops
    assert steps["postprocess"].ops == post_ops
    assert (preparation.added_input_quantizer is not None) == (name == "jet_tagging_qkeras_3layer")
    assert np.array_equal(composed, expected)


def _batchnorm_model(gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray,
                     weights: np.ndarray) -> ModelWrapper:
    """Quant(2-bit, scale 1) -> MatMul(2-bit weights) -> BatchNormalization -> Quant(2-bit), as in FINN's TFC."""
    inputs, outputs = weights.shape

    def quant(source, output, name):
        return helper.make_node("Quant", [source, "one", "zero", "two"], [output], name=name,
                                domain="qonnx.custom_op.general", signed=1, narrow=1, rounding_mode="ROUND")

    nodes = [
        quant("x", "xq", "input_quant"),
        quant("w", "wq", "weight_quant"),
        helper.make_node("MatMul", ["xq", "wq"], ["acc"], name="matmul"),
        helper.make_node("BatchNormalization", ["acc", "gamma", "beta", "mean", "var"], ["bn"], name="bn",
                         epsilon=1e-5),
        quant("bn", "y", "output_quant"),
    ]
    constants = {"one": np.float32(1), "zero": np.float32(0), "two": np.float32(2), "w": weights,
                 "gamma": gamma, "beta": beta, "mean": mean, "var": var}
    graph = helper.make_graph(
        nodes, "batchnorm_quant",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, inputs])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, outputs])],
        [onnx.numpy_helper.from_array(np.asarray(value, dtype=np.float32), name) for name, value in constants.items()],
    )
    return ModelWrapper(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def test_batchnorm_thresholds_match_reference():
    rng = np.random.default_rng(7)
    channels = 6
    weights = rng.integers(-1, 2, size=(9, channels)).astype(np.float32)
    # Channels 1 and 4 have negative BatchNormalization scales, so their output falls as the accumulator rises.
    gamma = np.array([1.3, -0.8, 2.0, 0.7, -1.9, 1.1], dtype=np.float32)
    beta = rng.normal(size=channels).astype(np.float32)
    mean = rng.normal(size=channels).astype(np.float32)
    var = rng.uniform(0.5, 4.0, size=channels).astype(np.float32)
    model = _batchnorm_model(gamma, beta, mean, var, weights)
    # Every input code vector of 9 values in {-1, 0, 1}.
    codes = np.array(np.meshgrid(*[[-1, 0, 1]] * 9, indexing="ij")).reshape(9, -1).T.astype(np.float32)

    rewritten = batchnorm_to_thresholds(model)
    threshold = rewritten.get_nodes_by_op_type("CodesignThreshold")[0]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in threshold.attribute}
    table = onnx.numpy_helper.to_array(attributes["thresholds"])
    new_weights = rewritten.get_initializer(rewritten.find_producer("wq").input[0])
    accumulators = codes @ new_weights
    design = attributes["offset"] + (accumulators[:, :, None] >= table[None, :, :]).sum(axis=2)
    expected = Reference(model).run(codes)

    assert all(len(np.unique(expected[:, channel])) >= 2 for channel in range(channels))
    assert rewritten.get_nodes_by_op_type("BatchNormalization") == []
    assert table.shape == (channels, 2)
    assert np.array_equal(new_weights[:, [1, 4]], -weights[:, [1, 4]])
    assert np.array_equal(new_weights[:, [0, 2, 3, 5]], weights[:, [0, 2, 3, 5]])
    assert np.array_equal(design, expected)


# ---- slow: convert and C-simulate ---------------------------------------------------------


@pytest.mark.slow
def test_module_factory_with_state_dict_exact(tmp_path, module_folder):
    folder, name = module_folder
    state = _quant_state_dict(folder, name)
    project = tmp_path / "project"

    status = main(["-q", "convert", f"{name}:build", "--state-dict", str(state), "--out", str(project),
                   "--tb-images", "4"])
    meta = json.loads((project / "codesign.json").read_text())
    qonnx = load_qonnx(project / "model.qonnx.onnx").model
    # Each QuantConv2d keeps its Int32Bias quantizer as a Quant node in front of the bias, not a folded constant.
    bias_quantizers = [qonnx.find_producer(conv.input[2]) for conv in qonnx.get_nodes_by_op_type("Conv")]
    sim_status, report = _simulate(project, tmp_path)

    assert status == 0
    assert meta["source"] == f"{name}:build"
    assert [node.op_type for node in bias_quantizers] == ["Quant", "Quant"]
    assert [float(qonnx.get_initializer(node.input[3])) for node in bias_quantizers] == [32.0, 32.0]
    assert meta["input"]["reference_shape"] == [1, 3, 8, 8]
    assert sim_status == 0
    assert report["values"] == 20 * 8 * 8 * 3
    assert report["exact_fraction"] == 1.0


@pytest.mark.slow
def test_qcdq_file_converted_exact(tmp_path):
    torch.manual_seed(5)
    module = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantConv2d(3, 4, 3, padding=1, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                        weight_bit_width=5, bias_quant=Int32Bias, return_quant_tensor=True),
        qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=5, return_quant_tensor=True),
        qnn.QuantConv2d(4, 2, 1, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                        weight_bit_width=6, bias_quant=Int32Bias, return_quant_tensor=False),
    )
    _calibrate(module, (1, 3, 8, 8))
    path = tmp_path / "model.qcdq.onnx"
    # Brevitas 0.13's dynamo QCDQ export rejects quantized biases; the TorchScript exporter writes them.
    export_onnx_qcdq(module, torch.zeros(1, 3, 8, 8), str(path), dynamo=False)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    project = tmp_path / "project"

    status = main(["-q", "convert", str(path), "--out", str(project), "--tb-images", "4"])
    meta = json.loads((project / "codesign.json").read_text())
    sim_status, report = _simulate(project, tmp_path)

    assert {"QuantizeLinear", "Clip", "DequantizeLinear"} <= ops
    assert "Quant" not in ops
    assert status == 0
    assert meta["source_model"]["source_format"] == "qcdq"
    assert sim_status == 0
    assert report["values"] == 20 * 8 * 8 * 2
    assert report["exact_fraction"] == 1.0


@pytest.mark.slow
def test_float_module_calibrated_exact(tmp_path, module_folder):
    from PIL import Image

    _, name = module_folder
    images = tmp_path / "calibration"
    images.mkdir()
    rng = np.random.default_rng(3)
    for index in range(6):
        # Sizes differ from the input shape on purpose: calibration resizes them.
        pixels = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"image{index}.png")
    project = tmp_path / "project"

    status = main(["-q", "convert", f"{name}_float:build", "--input-shape", "1,3,16,16", "--calibrate", str(images),
                   "--weight-bits", "6", "--act-bits", "6", "--out", str(project), "--tb-images", "4"])
    qonnx = load_qonnx(project / "model.qonnx.onnx").model
    activations = [node for node in qonnx.get_nodes_by_op_type("Quant") if qonnx.get_initializer(node.input[0]) is None]
    activation_bits = sorted({float(qonnx.get_initializer(node.input[3])) for node in activations})
    # The last convolution has no ReLU, so its output quantizer directly follows it; hls4ml merges the two.
    last = qonnx.find_producer(qonnx.graph.output[0].name)
    sim_status, report = _simulate(project, tmp_path)

    assert status == 0
    assert activation_bits == [6.0, 8.0]
    assert last.op_type == "Quant"
    assert qonnx.find_producer(last.input[0]).op_type == "Conv"
    assert sim_status == 0
    assert report["values"] == 20 * 8 * 8 * 5
    assert report["exact_fraction"] == 1.0


@pytest.mark.slow
@needs_peer_models
def test_jet_tagger_peer_model_exact(tmp_path):
    project = tmp_path / "project"

    status = main(["-q", "convert", str(PEER_MODELS / "jet_tagging_qkeras_3layer.onnx"), "--out", str(project)])
    meta = json.loads((project / "codesign.json").read_text())
    sim_status, report = _simulate(project, tmp_path)

    assert status == 0
    assert meta["source_model"]["host_steps"] == [
        {"role": "postprocess", "ops": ["Softmax"], "file": "host_postprocess.onnx"}
    ]
    assert meta["source_model"]["added_input_quantizer"] == "fixed<16,6>"
    assert (project / "host_postprocess.onnx").is_file()
    assert "postprocess: Softmax runs on the host" in (project / "precision.md").read_text()
    assert sim_status == 0
    assert report["values"] == 20 * 5
    assert report["exact_fraction"] == 1.0


@pytest.mark.slow
@needs_peer_models
def test_tfc_peer_model_exact(tmp_path):
    project = tmp_path / "project"

    status = main(["-q", "convert", str(PEER_MODELS / "tfc_2w2a.onnx"), "--out", str(project)])
    meta = json.loads((project / "codesign.json").read_text())
    precision = (project / "precision.md").read_text()
    sim_status, report = _simulate(project, tmp_path)

    assert status == 0
    assert [step["role"] for step in meta["source_model"]["host_steps"]] == ["preprocess", "postprocess"]
    assert meta["source_model"]["added_input_quantizer"] is None
    assert meta["input"]["shape"] == [1, 784]
    assert precision.count("thresholds per channel") == 3
    assert sim_status == 0
    assert report["values"] == 20 * 10
    assert report["exact_fraction"] == 1.0

"""Stage 3, lower: QONNX to an hls4ml model (Vitis backend, io_stream) with exact types.

The QONNX model is converted to channels-last with qonnx's transformations.
The input stays NHWC; the Transpose that qonnx appends at the output is
removed (``RemoveOutputTranspose``), so the design streams NHWC in and NHWC
out. ``LoweredModel`` records both layouts so that later stages read them instead of assuming them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import hls4ml
import numpy as np
import onnx
from hls4ml.model.types import FixedPrecisionType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean, RemoveConsecutiveChanFirstAndChanLastTrafos
from qonnx.transformation.gemm_to_matmul import GemmToMatMul
from qonnx.util.cleanup import cleanup_model

from codesign.boards import Board
from codesign.channel_permute import CHANNEL_PERMUTE_OP, FuseChannelPermutes
from codesign.errors import UnsupportedModelError
from codesign.export import QonnxModel
from codesign.hls_layers import apply_templates, prepare_for_hls4ml
from codesign.graph_passes import batchnorm_to_thresholds, needs_batchnorm_thresholds
from codesign.layouts import (
    ChannelsLastSpatialOps,
    MaxPoolPaddingToPad,
    MoveChannelsFirstPastQuant,
    RemoveInverseTransposes,
    RemoveEmptyResizeRoi,
    cleanup_channels_last,
    is_channels_last_model,
)
from codesign.precision import PrecisionEntry, infer_precision
from codesign.reference import QuantParams, quant_params
from codesign.thresholds import ThresholdLowering, lower_float_scales, needs_threshold_lowering

log = logging.getLogger(__name__)

PROJECT_NAME = "myproject"


@dataclass
class InputQuantizer:
    """Input quantizer that maps float inputs to the integer codes the design reads."""

    params: QuantParams
    width: int
    frac: int

    def codes(self, x: np.ndarray) -> np.ndarray:
        return self.params.quantize_codes(x)

    @property
    def precision(self) -> FixedPrecisionType:
        return FixedPrecisionType(
            width=self.width, integer=self.width - self.frac, signed=self.params.signed
        )


@dataclass
class LoweredModel:
    """An hls4ml model with exact types, and the facts the project and csim stages need."""

    hls_model: object
    channels_last: ModelWrapper
    input_quantizer: InputQuantizer
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    output_precision: FixedPrecisionType
    precision_table: list[PrecisionEntry]
    input_layout: str = "NHWC"
    output_layout: str = "NHWC"
    # True when the QONNX reference model is channels-first (PyTorch's NCHW).
    reference_channels_first: bool = False
    hls_config: dict = field(default_factory=dict)
    # Set when float scales, zero points or bipolar weights were lowered to integer thresholds.
    float_scales: ThresholdLowering | None = None


class RemoveOutputTranspose(Transformation):
    """Drop a Transpose that only restores NCHW order at the graph output."""

    def apply(self, model: ModelWrapper):
        output = model.graph.output[0]
        producer = model.find_producer(output.name)
        if producer is None or producer.op_type != "Transpose":
            return model, False
        perm = list(onnx.helper.get_attribute_value(producer.attribute[0]))
        if perm != [0, 3, 1, 2] and perm != [0, 2, 1]:
            return model, False
        shape = model.get_tensor_shape(producer.input[0])
        model.graph.node.remove(producer)
        # Rename the producer's input to the graph output so the output keeps its name.
        for node in model.graph.node:
            for index, name in enumerate(node.output):
                if name == producer.input[0]:
                    node.output[index] = output.name
        model.set_tensor_shape(output.name, shape)
        return model, False


class AddZeroGemmBias(Transformation):
    """Give every Gemm without a bias input a zero bias, because qonnx 1.0's GemmToMatMul reads input C unchecked."""

    def apply(self, model: ModelWrapper):
        for node in model.get_nodes_by_op_type("Gemm"):
            if len(node.input) > 2 and node.input[2]:
                continue
            output_shape = model.get_tensor_shape(node.output[0])
            name = f"{node.name or node.output[0]}_zero_bias"
            model.set_initializer(name, np.zeros(output_shape[-1], dtype=np.float32))
            if len(node.input) > 2:
                node.input[2] = name
            else:
                node.input.append(name)
        return model, False


def input_quantizer(model: ModelWrapper, integer_codes: bool = False) -> InputQuantizer:
    """Return the quantizer on the graph input, whose codes the design reads.

    With ``integer_codes`` (float-scale lowering), the design's input type
    contains the integer codes themselves, so any scale is allowed.
    """
    input_name = model.graph.input[0].name
    consumers = model.find_consumers(input_name)
    if len(consumers) != 1 or consumers[0].op_type != "Quant":
        found = ", ".join(f"{n.name} ({n.op_type})" for n in consumers) or "nothing"
        raise UnsupportedModelError(
            f"graph input {input_name!r} feeds {found}; exact lowering needs a single Quant node on the input"
        )
    node = consumers[0]
    params = quant_params(model, node)
    scale = np.unique(params.scale)
    mantissa, exponent = np.frexp(scale)
    if integer_codes and scale.size == 1 and not np.any(params.zero_point != 0):
        return InputQuantizer(params=params, width=int(params.bit_width), frac=0)
    if scale.size != 1 or mantissa[0] != 0.5 or np.any(params.zero_point != 0):
        raise UnsupportedModelError(
            f"node {node.name!r} (Quant): the input quantizer needs one power-of-two scale and zero point 0"
        )
    frac = 1 - int(exponent[0])
    width = int(params.bit_width)
    return InputQuantizer(params=params, width=width, frac=frac)


# ONNX ops (after channels-last conversion and GemmToMatMul) that exact lowering maps onto hls4ml.
SUPPORTED_OPS = (
    "Quant", "BipolarQuant", "Conv", "MatMul", "Add", "Relu", "MaxPool", "Flatten", "Reshape",
    "LeakyRelu", "Resize", "Concat", "AveragePool", "ReduceMean", "BatchNormalization", "Pad",
)


# Rejection reasons for ops that qonnx can leave in a channels-last model, appended to the error message.
UNSUPPORTED_OP_HINTS = {
    "Transpose": (
        " (a layout change that qonnx could not remove and that is not a channel shuffle, which only "
        "reorders the channels inside each pixel): hls4ml's io_stream streams one pixel's channels at a time "
        "and cannot transpose a streamed tensor"
    ),
}


def check_supported_ops(model: ModelWrapper) -> None:
    """Raise UnsupportedModelError naming the first node whose op exact lowering does not support.

    Transposes inside a channel shuffle are supported, because ``lower`` fuses the shuffle into one
    channel permute node.
    """
    for node in model.transform(FuseChannelPermutes()).graph.node:
        if node.op_type not in SUPPORTED_OPS and node.op_type != CHANNEL_PERMUTE_OP:
            hint = UNSUPPORTED_OP_HINTS.get(node.op_type, "")
            raise UnsupportedModelError(
                f"node {node.name!r} ({node.op_type}) is not supported by exact lowering{hint}; "
                f"supported ops: {', '.join(SUPPORTED_OPS)}"
            )


def is_channels_first(model: ModelWrapper) -> bool:
    """Return True when the model has standard-domain spatial ops, which ONNX defines as channels-first.

    A model already converted to channels-last uses qonnx's channels-last
    domain for those ops instead.
    """
    if is_channels_last_model(model):
        return False
    spatial = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization", "Resize", "Upsample")
    return any(node.op_type in spatial and node.domain in ("", "ai.onnx") for node in model.graph.node)


def to_channels_last(qonnx: QonnxModel) -> ModelWrapper:
    """Return the NHWC-in, NHWC-out form of the model that hls4ml reads."""
    model = ModelWrapper(onnx.ModelProto.FromString(qonnx.model.model.SerializeToString()))
    if not is_channels_last_model(model):
        # A model that already uses qonnx's channels-last ops was cleaned up when it was loaded.
        model = cleanup_model(model.transform(RemoveEmptyResizeRoi()))
        model = model.transform(ConvertToChannelsLastAndClean(make_input_channels_last=True))
        # Each pass exposes Transposes for the other, so they alternate until the graph stops changing.
        while True:
            before = model.model.SerializeToString()
            model = model.transform(RemoveInverseTransposes())
            model = model.transform(MoveChannelsFirstPastQuant())
            model = model.transform(ChannelsLastSpatialOps())
            if model.model.SerializeToString() == before:
                break
        model = model.transform(RemoveConsecutiveChanFirstAndChanLastTrafos())
    model = model.transform(MaxPoolPaddingToPad())
    model = model.transform(RemoveOutputTranspose())
    with warnings.catch_warnings():
        # GemmToMatMul warns about every Gemm opset other than 9; the rewrite is the same.
        warnings.simplefilter("ignore", UserWarning)
        model = model.transform(AddZeroGemmBias())
        model = model.transform(GemmToMatMul())
    return cleanup_channels_last(model)


def lower(
    qonnx: QonnxModel,
    board: Board,
    out_dir: Path,
    reuse_factor: int = 1,
    strategy: str = "Latency",
) -> LoweredModel:
    """Convert to an hls4ml model in ``out_dir`` and set every type by interval analysis."""
    model = to_channels_last(qonnx)
    check_supported_ops(model)
    float_scales = None
    hls_input = model
    if needs_threshold_lowering(model):
        from codesign.hls_ext.threshold import register_extension

        register_extension()
        hls_input, float_scales = lower_float_scales(model)
    has_thresholds = float_scales is not None
    if needs_batchnorm_thresholds(hls_input):
        from codesign.hls_ext.threshold import register_extension

        register_extension()
        hls_input = batchnorm_to_thresholds(hls_input)
        has_thresholds = True
    quantizer = input_quantizer(model, integer_codes=float_scales is not None)
    hls_input = hls_input.transform(FuseChannelPermutes())
    if any(node.op_type == CHANNEL_PERMUTE_OP for node in hls_input.graph.node):
        from codesign.hls_ext.channel_permute import register_extension as register_channel_permute

        register_channel_permute()
    hls_input = prepare_for_hls4ml(hls_input)

    # hls4ml prints its parse trace to stdout; keep it in the debug log instead.
    trace = io.StringIO()
    with contextlib.redirect_stdout(trace):
        config = hls4ml.utils.config_from_onnx_model(
            hls_input, granularity="name", backend="Vitis", default_precision="fixed<16,6>"
        )
    config["Model"]["ReuseFactor"] = reuse_factor
    config["Model"]["Strategy"] = strategy
    # Trace calls are compiled outside synthesis only and stay off until the
    # testbench enables them, so every project can name a diverging layer.
    for layer_config in config["LayerName"].values():
        layer_config["Trace"] = True
        # Per-layer entries override the model-wide reuse factor.
        if "ReuseFactor" in layer_config:
            layer_config["ReuseFactor"] = reuse_factor
    input_name = model.graph.input[0].name
    config["LayerName"].setdefault(input_name, {}).setdefault("Precision", {})["result"] = str(quantizer.precision)

    with contextlib.redirect_stdout(trace):
        hls_model = hls4ml.converters.convert_from_onnx_model(
            hls_input,
            output_dir=str(out_dir),
            project_name=PROJECT_NAME,
            io_type="io_stream",
            backend="Vitis",
            part=board.part,
            clock_period=round(1000.0 / board.clock_mhz, 3),
            hls_config=config,
        )
    log.debug("hls4ml conversion output:\n%s", trace.getvalue())
    # The writer emits the per-layer save calls only with this model-wide flag.
    hls_model.config.trace_output = True

    table = infer_precision(hls_model)
    if has_thresholds:
        # The threshold and rescale templates render constants that infer_precision clamped and sized.
        hls_model.apply_flow("vitis:apply_templates")
    # After any re-run of hls4ml's templates, which would restore hls4ml's calls.
    apply_templates(hls_model)
    output_var = hls_model.get_output_variables()[0]
    input_shape = tuple(model.get_tensor_shape(input_name))
    output_shape = tuple(model.get_tensor_shape(model.graph.output[0].name))
    layouts = {2: "NC", 3: "NWC", 4: "NHWC"}
    return LoweredModel(
        hls_model=hls_model,
        channels_last=model,
        input_quantizer=quantizer,
        input_shape=input_shape,
        output_shape=output_shape,
        output_precision=output_var.type.precision,
        precision_table=table,
        input_layout=layouts.get(len(input_shape), "channels-last"),
        output_layout=layouts.get(len(output_shape), "channels-last"),
        reference_channels_first=is_channels_first(qonnx.model),
        hls_config=config,
        float_scales=float_scales,
    )

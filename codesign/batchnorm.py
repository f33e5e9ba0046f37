"""Integer thresholds for a BatchNormalization between a convolution or dense layer and its quantizer.

A QAT model exported with Brevitas keeps a float BatchNormalization after a
``Conv`` or ``MatMul``: Conv -> [bias Add] -> BatchNormalization -> [Relu] ->
Quant. Its scale ``gamma / sqrt(var + eps)`` is in general no binary
fraction, and the float32 reference rounds both its product and its sum.
The thresholds therefore come from the reference's own arithmetic: the
BatchNormalization, ReLU and Quant nodes run in onnxruntime (as the reference
runs them) on the accumulator values, so each output code matches the
reference bit for bit.

Each of these float32 steps is a non-decreasing function of its input for a
fixed channel (rounding is monotonic), and so is their composition when the
channel's BatchNormalization scale is positive. It is non-increasing when the
scale is negative: that channel's weight codes are negated, so that the
threshold unit counts on ``-A``. Per channel, the accumulator interval is
either enumerated (``ENUMERATE_LIMIT`` values over all channels), which also
checks monotonicity, or searched by bisection for each output level, which
relies on it.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
import onnx
from onnx import helper

from codesign.errors import UnsupportedModelError
from codesign.reference import QuantParams, Reference

log = logging.getLogger(__name__)

# At most this many accumulator values (the widest channel's interval times the
# channel count) run through the reference in one enumeration, about 32 MiB per
# int64 array. Wider intervals use bisection instead.
ENUMERATE_LIMIT = 1 << 22


class ReplayedQuantizer:
    """The reference's BatchNormalization -> [Relu] -> Quant for one layer, evaluated on integer accumulators.

    ``alphas`` and ``betas`` map the accumulator to the value that reaches the
    BatchNormalization: ``float32(alpha_c * A + beta_c)``.

    NOTE: that value is computed in float64 and rounded once to float32. With
    power-of-two input and weight scales and accumulators below 2**24 it is
    exactly the reference's convolution output. With float scales, the
    reference's float32 convolution sum rounds in its own order and may differ
    by an ulp (see ``codesign.thresholds``).
    """

    def __init__(self, model, float_ops: list[onnx.NodeProto], quant: onnx.NodeProto, params: QuantParams,
                 alphas: list[Fraction], betas: list[Fraction], rank: int):
        self.channels = len(alphas)
        self.rank = rank
        self.alphas = np.array([float(a) for a in alphas])
        self.betas = np.array([float(b) for b in betas])
        self.scale = float(np.unique(params.scale)[0])
        self.zero_point = int(round(float(np.unique(params.zero_point)[0])))
        self.session = self._session(model, float_ops, quant)

    def _shape(self, count):
        if self.rank == 2:
            return [count, self.channels]
        return [1, self.channels, count] + [1] * (self.rank - 3)

    def _session(self, model, float_ops, quant) -> Reference:
        nodes = []
        for node in float_ops + [quant]:
            copy = onnx.NodeProto.FromString(node.SerializeToString())
            if copy.op_type == "BatchNormalization":
                # The channels-last domain's BatchNormalization is ONNX's own on an NCHW tensor.
                copy.domain = ""
            nodes.append(copy)
        constants = [name for node in nodes for name in node.input[1:] if name]
        initializers = [onnx.numpy_helper.from_array(np.asarray(model.get_initializer(name)), name)
                        for name in dict.fromkeys(constants)]
        graph = helper.make_graph(
            nodes, "codesign_batchnorm_replay",
            [helper.make_tensor_value_info(float_ops[0].input[0], onnx.TensorProto.FLOAT, self._shape("n"))],
            [helper.make_tensor_value_info(quant.output[0], onnx.TensorProto.FLOAT, self._shape("n"))],
            initializers,
        )
        opsets = [opset for opset in model.model.opset_import if opset.domain in ("", "ai.onnx")]
        from qonnx.core.modelwrapper import ModelWrapper

        return Reference(ModelWrapper(helper.make_model(graph, opset_imports=opsets)), threads=1)

    def codes(self, accumulators: np.ndarray) -> np.ndarray:
        """Return the reference's output codes (integer minus zero point) for accumulators of shape (N, channels)."""
        values = (accumulators * self.alphas + self.betas).astype(np.float32)
        if self.rank == 2:
            batch = values
        else:
            batch = values.T.reshape(self._shape(len(values)))
        output = self.session.session.run(None, {self.session.input_name: batch})[0]
        output = output.reshape(self.channels, -1).T if self.rank != 2 else output
        return np.rint(output / self.scale).astype(np.int64) - self.zero_point


def replayed_thresholds(replay: ReplayedQuantizer, low: np.ndarray, high: np.ndarray, levels: range,
                        where: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (thresholds, falling): code = levels.start - 1 + count(A' >= thresholds[c, k]).

    ``A' = -A`` for the channels where ``falling`` is True, else ``A``.
    ``low`` and ``high`` bound each channel's accumulator. A threshold above
    ``high`` (in A' terms) means "never"; one at the lowest A' means "always".
    """
    channels = replay.channels
    ends = replay.codes(np.stack([low, high]).astype(np.int64))
    falling = ends[0] > ends[1]
    # Bounds in A' terms.
    start = np.where(falling, -high, low)
    stop = np.where(falling, -low, high)
    level_array = np.asarray(list(levels), dtype=np.int64)
    sign = np.where(falling, -1, 1)
    values = (int((stop - start).max()) + 1) * channels
    if values <= ENUMERATE_LIMIT:
        log.debug("%s: enumerating %d accumulator values", where, values)
        return _enumerated(replay, start, stop, sign, level_array, where), falling
    log.debug("%s: bisecting %d accumulator values per level", where, values)
    return _bisected(replay, start, stop, sign, level_array), falling


def _enumerated(replay, start, stop, sign, levels, where) -> np.ndarray:
    span = int((stop - start).max()) + 1
    steps = np.arange(span, dtype=np.int64)[:, None]
    # Column c contains A' = start[c] .. stop[c], padded with stop[c].
    primed = np.minimum(start[None, :] + steps, stop[None, :])
    codes = replay.codes(primed * sign[None, :])
    thresholds = np.empty((replay.channels, len(levels)), dtype=np.int64)
    for channel in range(replay.channels):
        count = int(stop[channel] - start[channel]) + 1
        column = codes[:count, channel]
        if np.any(np.diff(column) < 0):
            raise UnsupportedModelError(f"{where}: channel {channel}'s quantized output is not monotonic in the "
                                        "accumulator")
        # First A' whose code reaches each level; count means "never".
        first = np.searchsorted(column, levels, side="left")
        thresholds[channel] = np.where(first < count, start[channel] + first, stop[channel] + 1)
    return thresholds


def _bisected(replay, start, stop, sign, levels) -> np.ndarray:
    # For every (level, channel): the smallest A' in [start, stop + 1] with code >= level (stop + 1: never).
    low = np.broadcast_to(start, (len(levels), replay.channels)).copy()
    high = np.broadcast_to(stop + 1, (len(levels), replay.channels)).copy()
    target = levels[:, None]
    while np.any(low < high):
        middle = (low + high) // 2
        reached = replay.codes(np.minimum(middle, stop[None, :]) * sign[None, :]) >= target
        active = low < high
        high = np.where(active & reached, middle, high)
        low = np.where(active & ~reached, middle + 1, low)
    return low.T.copy()

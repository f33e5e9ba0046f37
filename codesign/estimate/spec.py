"""Layer descriptions that the estimator costs, and their extraction from an hls4ml model.

A ``LayerSpec`` holds only what the cost model reads: shapes, fixed-point types,
kernel geometry, reuse factor, strategy, zero weights and the depth of the output
FIFO. Tests and callers can build one directly without hls4ml.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum

from codesign.errors import UnsupportedModelError


class LayerKind(StrEnum):
    """Layer kinds that the cost model covers, one per hls4ml io_stream template."""

    ACTIVATION = "activation"
    ZERO_PADDING = "zero_padding2d"
    CONV2D = "conv2d"
    POINTWISE_CONV2D = "pointwise_conv2d"
    DENSE = "dense"
    MAX_POOL2D = "max_pool2d"
    AVERAGE_POOL2D = "average_pool2d"


MATMUL_KINDS = (LayerKind.CONV2D, LayerKind.POINTWISE_CONV2D, LayerKind.DENSE)


def resource_reuse_factor_valid(n_in: int, n_out: int, reuse: int) -> bool:
    """Return whether hls4ml 1.3.0 keeps this reuse factor for the Resource strategy.

    The rule of ``FPGABackend._validate_reuse_factor``. hls4ml replaces any other
    value with the closest valid one.
    """
    products = n_in * n_out
    multiplier_limit = math.ceil(products / min(n_in, reuse))
    valid = multiplier_limit % n_out == 0 or reuse >= n_in
    valid = valid and (reuse % n_in == 0 or reuse < n_in)
    return valid and products % reuse == 0


class Strategy(StrEnum):
    """hls4ml implementation strategy of a dense or convolution kernel."""

    LATENCY = "latency"
    RESOURCE = "resource"


@dataclass(frozen=True)
class FixedType:
    """An ``ap_fixed``/``ap_ufixed`` type: total width, integer bits, signedness.

    ``rounding`` is true for every rounding mode except truncation (AP_TRN), and
    ``saturation`` for every overflow mode except wrapping (AP_WRAP).
    """

    width: int
    integer: int
    signed: bool = True
    rounding: bool = False
    saturation: bool = False

    @property
    def frac(self) -> int:
        return self.width - self.integer

    def __str__(self) -> str:
        name = "fixed" if self.signed else "ufixed"
        modes = ""
        if self.rounding or self.saturation:
            modes = f",{'RND' if self.rounding else 'TRN'},{'SAT' if self.saturation else 'WRAP'}"
        return f"{name}<{self.width},{self.integer}{modes}>"

    @classmethod
    def from_hls(cls, precision) -> FixedType:
        """Convert an hls4ml ``FixedPrecisionType`` or ``IntegerPrecisionType``."""
        from hls4ml.model.types import RoundingMode, SaturationMode

        width = getattr(precision, "width", None)
        if width is None:
            raise UnsupportedModelError(f"type {precision} is not fixed-point; the estimate needs bit widths")
        rounding_mode = getattr(precision, "rounding_mode", None)
        saturation_mode = getattr(precision, "saturation_mode", None)
        return cls(
            width=int(width),
            integer=int(getattr(precision, "integer", width)),
            signed=bool(precision.signed),
            rounding=rounding_mode not in (None, RoundingMode.TRN),
            saturation=saturation_mode not in (None, SaturationMode.WRAP),
        )


@dataclass(frozen=True)
class LayerSpec:
    """One hls4ml layer, reduced to the fields that the cost model reads.

    Shapes are channels-last: ``(height, width, channels)`` for images and ``(n,)``
    for a dense layer. ``kernel`` and ``stride`` are (height, width) and
    ``padding`` is (top, bottom, left, right). ``n_zeros`` counts zero weights,
    which hls4ml's Latency strategy removes from the multiplier count.
    ``output_fifo_depth`` is the depth of the ``hls::stream`` that carries the
    output to the next layer, or None when the output is a top-level port.
    """

    name: str
    kind: LayerKind
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_type: FixedType
    output_type: FixedType
    weight_type: FixedType | None = None
    accum_type: FixedType | None = None
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    activation: str = "linear"
    reuse_factor: int = 1
    strategy: Strategy = Strategy.LATENCY
    n_zeros: int = 0
    output_stream: str | None = None
    output_fifo_depth: int | None = None

    def __post_init__(self) -> None:
        if self.reuse_factor < 1:
            raise ValueError(f"layer {self.name!r}: reuse factor must be at least 1, got {self.reuse_factor}")
        if self.kind in MATMUL_KINDS and (self.weight_type is None or self.accum_type is None):
            raise ValueError(f"layer {self.name!r} ({self.kind}) needs weight_type and accum_type")

    @property
    def n_in(self) -> int:
        """Inputs of one dense product: kernel height x width x input channels for a convolution."""
        if self.kind is LayerKind.DENSE:
            return math.prod(self.input_shape)
        return self.kernel[0] * self.kernel[1] * self.input_shape[-1]

    @property
    def n_out(self) -> int:
        """Outputs of one dense product: output channels for a convolution."""
        if self.kind is LayerKind.DENSE:
            return math.prod(self.output_shape)
        return self.output_shape[-1]

    @property
    def pixels_in(self) -> int:
        """Stream words read per image: one word carries all channels of a pixel."""
        if self.kind is LayerKind.DENSE:
            return 1
        return math.prod(self.input_shape[:-1])

    @property
    def pixels_out(self) -> int:
        """Stream words written per image."""
        if self.kind is LayerKind.DENSE:
            return 1
        return math.prod(self.output_shape[:-1])

    def with_reuse_factor(self, reuse_factor: int) -> LayerSpec:
        return dataclasses.replace(self, reuse_factor=reuse_factor)


def specs_from_hls_model(hls_model) -> list[LayerSpec]:
    """Describe every layer of an hls4ml ``ModelGraph`` (io_stream) as a ``LayerSpec``.

    The input layer is skipped because it is the top-level AXI-Stream port.
    Raises UnsupportedModelError for a layer class the cost model has no rule for.
    """
    io_type = hls_model.config.get_config_value("IOType")
    if io_type != "io_stream":
        raise UnsupportedModelError(f"the estimate models io_stream designs only, got IOType {io_type!r}")
    port_names = {variable.name for variable in hls_model.get_output_variables()}
    specs = []
    for layer in hls_model.get_layers():
        if layer.class_name == "Input":
            continue
        specs.append(_spec_from_layer(layer, port_names))
    return specs


def _spec_from_layer(layer, port_names: set[str]) -> LayerSpec:
    output = layer.get_output_variable()
    source = layer.get_input_variable()
    depth = None
    pragma = getattr(output, "pragma", None)
    if output.name not in port_names and isinstance(pragma, tuple) and pragma[0] == "stream":
        depth = int(pragma[1])
    common = {
        "name": layer.name,
        "input_shape": tuple(int(n) for n in source.shape),
        "output_shape": tuple(int(n) for n in output.shape),
        "input_type": FixedType.from_hls(source.type.precision),
        "output_type": FixedType.from_hls(output.type.precision),
        "reuse_factor": int(layer.get_attr("reuse_factor") or 1),
        "output_stream": output.name,
        "output_fifo_depth": depth,
    }
    kind = layer.class_name

    if kind == "Activation":
        activation = str(layer.get_attr("activation", "linear")).lower()
        if activation not in ("linear", "relu"):
            raise UnsupportedModelError(
                f"layer {layer.name!r}: activation {activation!r} has no cost model; supported: linear, relu"
            )
        return LayerSpec(kind=LayerKind.ACTIVATION, activation=activation, **common)

    if kind == "ZeroPadding2D":
        padding = tuple(int(layer.get_attr(key)) for key in ("pad_top", "pad_bottom", "pad_left", "pad_right"))
        return LayerSpec(kind=LayerKind.ZERO_PADDING, padding=padding, **common)

    if kind == "Pooling2D":
        pool_op = str(layer.get_attr("pool_op", "Max"))
        pooling = LayerKind.MAX_POOL2D if pool_op == "Max" else LayerKind.AVERAGE_POOL2D
        return LayerSpec(
            kind=pooling,
            kernel=(int(layer.get_attr("pool_height")), int(layer.get_attr("pool_width"))),
            stride=(int(layer.get_attr("stride_height")), int(layer.get_attr("stride_width"))),
            **common,
        )

    if kind in ("Conv2D", "PointwiseConv2D", "Dense"):
        strategy = str(layer.get_attr("strategy", "latency")).lower()
        if strategy not in (Strategy.LATENCY, Strategy.RESOURCE):
            raise UnsupportedModelError(
                f"layer {layer.name!r}: strategy {strategy!r} has no cost model; supported: latency, resource"
            )
        weight = layer.weights["weight"]
        matmul = {
            "weight_type": FixedType.from_hls(weight.type.precision),
            "accum_type": FixedType.from_hls(layer.get_attr("accum_t").precision),
            "strategy": Strategy(strategy),
            "n_zeros": int(max(weight.nzeros, 0)),
        }
        if kind == "Dense":
            return LayerSpec(kind=LayerKind.DENSE, **matmul, **common)
        geometry = {
            "kernel": (int(layer.get_attr("filt_height")), int(layer.get_attr("filt_width"))),
            "stride": (int(layer.get_attr("stride_height")), int(layer.get_attr("stride_width"))),
        }
        if any(int(layer.get_attr(key, 0) or 0) for key in ("pad_top", "pad_bottom", "pad_left", "pad_right")):
            raise UnsupportedModelError(
                f"layer {layer.name!r}: io_stream convolution with built-in padding has no cost model; "
                "hls4ml normally moves padding into a ZeroPadding2D layer"
            )
        conv_kind = LayerKind.CONV2D if kind == "Conv2D" else LayerKind.POINTWISE_CONV2D
        return LayerSpec(kind=conv_kind, **geometry, **matmul, **common)

    raise UnsupportedModelError(
        f"layer {layer.name!r} ({kind}): no cost model; supported: Activation (linear, relu), ZeroPadding2D, "
        "Conv2D, PointwiseConv2D, Dense, Pooling2D"
    )

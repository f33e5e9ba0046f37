"""Brevitas quantizers of the detector: power-of-two (fixed-point) scales, or Brevitas's float-scale defaults.

A power-of-two scale makes every quantized tensor a fixed-point number, so the
HLS types ap_fixed / ap_ufixed represent it exactly. Float scales (Brevitas's
default quantizers) are lowered exactly to integer thresholds instead (see
``codesign.thresholds``).
"""

from brevitas.core.scaling import ScalingImplType
from brevitas.quant import (
    Int8WeightPerTensorFixedPoint,
    Int8WeightPerTensorFloat,
    Int16Bias,
    Uint8ActPerTensorFixedPoint,
    Uint8ActPerTensorFloat,
)


class PixelInputQuant(Uint8ActPerTensorFixedPoint):
    """Unsigned 8-bit input with the constant scale 2**-8.

    Pixels are fed as value / 256, so every 8-bit pixel is one exact code and
    the hardware input is the raw byte.
    """

    scaling_impl_type = ScalingImplType.CONST
    scaling_init = 255.0 / 256.0


WeightQuant = Int8WeightPerTensorFixedPoint
ActQuant = Uint8ActPerTensorFixedPoint
# The bias scale is the product of the input and weight scales, so the bias
# adds to the accumulator without rounding.
BiasQuant = Int16Bias

# DetectorConfig.scaling values.
POWER_OF_TWO = "power_of_two"
FLOAT = "float"
SCALINGS = (POWER_OF_TWO, FLOAT)


def quantizers_for(scaling: str) -> tuple[type, type, type | None]:
    """Return (weight, activation, bias) quantizers for a ``DetectorConfig.scaling``.

    ``float`` uses the defaults of Brevitas 0.13's ``QuantConv2d`` and
    ``QuantReLU``: per-tensor float weight and activation scales and a float
    (unquantized) bias.
    """
    if scaling == POWER_OF_TWO:
        return WeightQuant, ActQuant, BiasQuant
    if scaling == FLOAT:
        return Int8WeightPerTensorFloat, Uint8ActPerTensorFloat, None
    raise ValueError(f"unknown scaling {scaling!r}; expected one of {', '.join(SCALINGS)}")

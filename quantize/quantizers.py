"""Brevitas quantizers with power-of-two (fixed-point) scales.

A power-of-two scale makes every quantized tensor a fixed-point number, so the
HLS types ap_fixed / ap_ufixed represent it exactly.
"""

from brevitas.core.scaling import ScalingImplType
from brevitas.quant import (
    Int8WeightPerTensorFixedPoint,
    Int16Bias,
    Uint8ActPerTensorFixedPoint,
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

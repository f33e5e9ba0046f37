"""Model factories for the batch normalization tests, imported by ``codesign convert batchnorm_models:...``."""

from __future__ import annotations

from torch import nn


def conv_bn_relu() -> nn.Module:
    """Return a float Conv2d -> BatchNorm2d -> ReLU -> Conv2d model with an 8 x 8 RGB input."""
    module = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 4, 1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
    )
    module.input_shape = (1, 3, 8, 8)
    return module

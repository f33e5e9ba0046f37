"""The tiny YOLO-style detector family, built from Brevitas layers.

Layout: QuantIdentity input, then blocks of QuantConv2d 3x3 + QuantReLU +
MaxPool 2x2, one more 3x3 block at the final grid, and a 1x1 detection head
without an output quantizer. The head predicts, for every grid cell,
``[objectness, tx, ty, tw, th, class logits...]`` (see ``quantize.boxes``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import brevitas.nn as qnn
import torch
from torch import nn

from quantize.quantizers import POWER_OF_TWO, PixelInputQuant, quantizers_for

OUTPUTS_PER_CLASS_FREE = 5  # objectness, tx, ty, tw, th


@dataclass(frozen=True)
class DetectorConfig:
    """Architecture and bit-widths of one detector; stored in every checkpoint.

    ``layer_weight_bits`` and ``layer_act_bits`` override the global widths for
    named layers (``conv0`` ... ``conv{n}``, ``head``). ``scaling`` selects the
    weight and activation quantizers (``quantize.quantizers.quantizers_for``):
    ``power_of_two`` or ``float`` (Brevitas's default float-scale quantizers).
    The input quantizer keeps its power-of-two scale 2**-8 either way.
    """

    image_size: int = 96
    num_classes: int = 10
    channels: tuple[int, ...] = (8, 16, 32, 64)
    final_channels: int = 64
    weight_bits: int = 6
    act_bits: int = 6
    input_bits: int = 8
    layer_weight_bits: dict[str, int] = field(default_factory=dict)
    layer_act_bits: dict[str, int] = field(default_factory=dict)
    anchor: float = 28.0
    scaling: str = POWER_OF_TWO

    @property
    def stride(self) -> int:
        return 2 ** len(self.channels)

    @property
    def grid(self) -> int:
        return self.image_size // self.stride

    @property
    def outputs_per_cell(self) -> int:
        return OUTPUTS_PER_CLASS_FREE + self.num_classes

    def conv_names(self) -> list[str]:
        return [f"conv{i}" for i in range(len(self.channels) + 1)]

    def weight_bits_of(self, name: str) -> int:
        return self.layer_weight_bits.get(name, self.weight_bits)

    def act_bits_of(self, name: str) -> int:
        return self.layer_act_bits.get(name, self.act_bits)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "DetectorConfig":
        data = dict(data)
        data["channels"] = tuple(data["channels"])
        return cls(**data)


def _conv(config: DetectorConfig, name: str, in_ch: int, out_ch: int, kernel: int) -> qnn.QuantConv2d:
    weight_quant, _, bias_quant = quantizers_for(config.scaling)
    return qnn.QuantConv2d(
        in_ch,
        out_ch,
        kernel,
        padding=kernel // 2,
        bias=True,
        weight_quant=weight_quant,
        weight_bit_width=config.weight_bits_of(name),
        bias_quant=bias_quant,
        return_quant_tensor=True,
    )


def _relu(config: DetectorConfig, name: str) -> qnn.QuantReLU:
    _, act_quant, _ = quantizers_for(config.scaling)
    return qnn.QuantReLU(act_quant=act_quant, bit_width=config.act_bits_of(name), return_quant_tensor=True)


class TinyYolo(nn.Module):
    """Quantized single-scale detector; input N x 3 x H x W with pixels / 256."""

    def __init__(self, config: DetectorConfig = DetectorConfig()):
        super().__init__()
        self.config = config
        self.input_quant = qnn.QuantIdentity(
            act_quant=PixelInputQuant, bit_width=config.input_bits, return_quant_tensor=True
        )
        layers: list[nn.Module] = []
        in_ch = 3
        for index, out_ch in enumerate(config.channels):
            name = f"conv{index}"
            layers += [_conv(config, name, in_ch, out_ch, 3), _relu(config, name), nn.MaxPool2d(2, 2)]
            in_ch = out_ch
        name = f"conv{len(config.channels)}"
        layers += [_conv(config, name, in_ch, config.final_channels, 3), _relu(config, name)]
        self.features = nn.Sequential(*layers)
        weight_quant, _, bias_quant = quantizers_for(config.scaling)
        head = qnn.QuantConv2d(
            config.final_channels,
            config.outputs_per_cell,
            1,
            bias=True,
            weight_quant=weight_quant,
            weight_bit_width=config.weight_bits_of("head"),
            bias_quant=bias_quant,
            return_quant_tensor=False,
        )
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.input_quant(x)))


def build(config: DetectorConfig | None = None) -> TinyYolo:
    return TinyYolo(config or DetectorConfig())


def save_checkpoint(model: TinyYolo, path, metrics: dict | None = None) -> None:
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), "metrics": metrics or {}}, path)


def load_checkpoint(path) -> tuple[TinyYolo, dict]:
    """Return (model in eval mode, checkpoint metrics)."""
    data = torch.load(path, map_location="cpu", weights_only=False)
    model = TinyYolo(DetectorConfig.from_dict(data["config"]))
    model.load_state_dict(data["state_dict"])
    model.eval()
    return model, data.get("metrics", {})

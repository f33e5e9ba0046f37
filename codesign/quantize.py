"""Stage 1, quantize: load a quantized detector into a ``QuantizedModel``.

Today the source is a codesign checkpoint (a QAT-trained Brevitas detector).
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch

from codesign.errors import InputError
from quantize.detector import DetectorConfig, load_checkpoint

log = logging.getLogger(__name__)

BUNDLED_CHECKPOINT = Path(__file__).resolve().parent.parent / "quantize" / "checkpoints" / "tiny_yolo_w6a6.pt"


@dataclass
class QuantizedModel:
    """A Brevitas module ready for export, with what the later stages need to know."""

    module: torch.nn.Module
    config: DetectorConfig
    source: str
    metrics: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape N x C x H x W of one PyTorch input."""
        size = self.config.image_size
        return (1, 3, size, size)


def quantize(source: str | Path | None = None) -> QuantizedModel:
    """Load a checkpoint; None means the bundled detector."""
    path = Path(source) if source is not None else BUNDLED_CHECKPOINT
    if path.is_dir():
        raise InputError(f"model path {path} is a folder; expected a codesign detector checkpoint file")
    if not path.is_file():
        raise InputError(f"model file not found: {path}")
    try:
        module, metrics = load_checkpoint(path)
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as error:
        lines = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        raise InputError(f"{path}: not a codesign detector checkpoint ({reason})") from error
    log.info("loaded %s", path)
    return QuantizedModel(module=module, config=module.config, source=str(path), metrics=metrics)

"""Helpers shared by the exact-lowering tests: export a Brevitas module and C-simulate it."""

from __future__ import annotations

import json

import torch

from codesign.cli import main
from codesign.quantize import QuantizedModel


class Exportable(QuantizedModel):
    """A QuantizedModel for any module, with an explicit example input shape."""

    def __init__(self, module, shape):
        super().__init__(module=module, config=None, source="test")
        self._shape = shape

    @property
    def input_shape(self):
        return self._shape


def calibrate(module, shape, scale=1.0):
    """Run four batches of random inputs in training mode so that activation scales settle; return eval mode."""
    torch.manual_seed(0)
    module.train()
    with torch.no_grad():
        for _ in range(4):
            module(scale * torch.randn(32, *shape[1:]))
    module.eval()
    return module


def simulate(project, tmp_path, count=20):
    """Run codesign csim on a project; return (exit status, report JSON)."""
    report_path = tmp_path / "report.json"
    status = main(["-q", "csim", str(project), "--count", str(count), "--json", str(report_path)])
    return status, json.loads(report_path.read_text())

"""Command-line options of the model sources in ``codesign.sources``, without heavy imports."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from codesign.errors import InputError

# hls4ml's default precision; the type of an added input quantizer unless --input-type sets another.
DEFAULT_INPUT_TYPE = "fixed<16,6>"


@dataclass(frozen=True)
class SourceOptions:
    """Options of the module and ONNX sources; ``None`` means not given."""

    state_dict: Path | None = None
    input_shape: tuple[int, ...] | None = None
    calibrate: Path | None = None
    weight_bits: int = 8
    act_bits: int = 8
    input_type: str = DEFAULT_INPUT_TYPE


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``1,3,96,96`` into a shape; raise InputError on anything else."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"invalid --input-shape {text!r}; expected comma-separated sizes such as 1,3,96,96") from None
    if len(shape) < 2 or any(size < 1 for size in shape):
        raise InputError(f"invalid --input-shape {text!r}; expected at least 2 positive sizes such as 1,3,96,96")
    return shape


CONVERT_EPILOG = """\
model sources:
  CHECKPOINT.pt         a codesign detector checkpoint (codesign train)
  FILE.onnx             a QONNX file, or a QCDQ file (QuantizeLinear -> Clip ->
                        DequantizeLinear, as Brevitas export_onnx_qcdq writes),
                        which is converted to QONNX first
  pkg.module:factory    a PyTorch module: factory() returns the nn.Module, and
                        pkg.module is imported from the current folder first.
                        --state-dict loads its weights (keys must match). The
                        input shape is --input-shape, else the module's
                        input_shape attribute; the batch size must be 1. A
                        float module needs --calibrate DIR: it is quantized
                        post-training with power-of-two scales, its input
                        being pixels / 256.

ONNX and module sources ship no data, so the testbench feeds random codes in
the input quantizer's range. Operations before the input quantizer (shape and
elementwise operations) and a trailing Softmax or float affine chain run on
the host: the design and the reference leave them out, and the project keeps
them as host_preprocess.onnx and host_postprocess.onnx (see source_model in
codesign.json). A graph input without a quantizer gets one of --input-type.
"""


def add_convert_options(parser) -> None:
    """Add the module-source and ONNX options to the ``codesign convert`` parser."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = CONVERT_EPILOG
    group = parser.add_argument_group("module and ONNX sources")
    group.add_argument("--state-dict", metavar="FILE",
                       help="PyTorch state dict to load into a pkg.module:factory model")
    group.add_argument("--input-shape", metavar="N,C,H,W",
                       help="input shape of a pkg.module:factory model, such as 1,3,96,96 "
                            "(default: the module's input_shape attribute)")
    group.add_argument("--calibrate", metavar="DIR",
                       help="quantize a float pkg.module:factory model post-training, calibrating on the images in DIR")
    group.add_argument("--weight-bits", type=int, default=8, help="weight bit-width for --calibrate (default 8)")
    group.add_argument("--act-bits", type=int, default=8, help="activation bit-width for --calibrate (default 8)")
    group.add_argument("--input-type", default=DEFAULT_INPUT_TYPE,
                       help="fixed-point type, such as fixed<16,6> or ufixed<8,0>, of the quantizer added to a graph "
                            f"input that has none (default {DEFAULT_INPUT_TYPE}, hls4ml's default precision)")


def options_from_args(args) -> SourceOptions:
    """Return the SourceOptions of parsed ``codesign convert`` arguments."""
    return SourceOptions(
        state_dict=Path(args.state_dict) if args.state_dict else None,
        input_shape=parse_shape(args.input_shape) if args.input_shape else None,
        calibrate=Path(args.calibrate) if args.calibrate else None,
        weight_bits=args.weight_bits,
        act_bits=args.act_bits,
        input_type=args.input_type,
    )


def convert_summary(project) -> list[str]:
    """Return lines for ``codesign convert`` that name the host-side steps and an added input quantizer."""
    source = project.meta.get("source_model")
    if not source:
        return []
    lines = []
    if source["source_format"] == "qcdq":
        lines.append("  source QCDQ, converted to QONNX")
    for step in source["host_steps"]:
        where = "before" if step["role"] == "preprocess" else "after"
        lines.append(f"  host-side {step['role']}: {' -> '.join(step['ops'])} runs on the host {where} the design "
                     f"({step['file']}); csim compares the design without it")
    if source["added_input_quantizer"]:
        lines.append(f"  input quantizer added: {source['added_input_quantizer']} (the graph input had none)")
    return lines

"""Model sources of ``codesign convert`` besides detector checkpoints and ONNX files.

A PyTorch module comes in as ``pkg.module:factory``: codesign imports
``pkg.module`` (the current folder is searched first, as ``python -m`` does),
calls ``factory()`` with no arguments, and loads ``--state-dict FILE`` into the
returned ``nn.Module`` with strict key matching. The input shape comes from
``--input-shape N,C,H,W`` or, without it, from an ``input_shape`` attribute of
the module. The batch dimension must be 1.

A module that contains Brevitas quantizers is exported as it is. A float
module needs ``--calibrate DIR``: Brevitas' graph quantizer replaces its layers
with power-of-two (fixed-point) quantized ones, and calibration mode sets the
activation scales from the images in DIR (see ``post_training_quantize``).
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from codesign.errors import InputError
from codesign.quantize import QuantizedModel
from codesign.sources_cli import SourceOptions

log = logging.getLogger(__name__)

FACTORY_SPEC = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm")
class ModuleModel(QuantizedModel):
    """A Brevitas module of any architecture, with its example input shape."""

    def __init__(self, module: nn.Module, shape: tuple[int, ...], source: str):
        super().__init__(module=module, config=None, source=source)
        self._shape = shape

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._shape


def is_factory_spec(text: str | None) -> bool:
    """Return True for ``pkg.module:factory`` (and not for an existing file of that name)."""
    return text is not None and FACTORY_SPEC.match(text) is not None and not Path(text).exists()


def is_brevitas_quantized(module: nn.Module) -> bool:
    """Return True when the module contains at least one Brevitas quantized layer."""
    from brevitas.nn.mixin.base import QuantLayerMixin

    return any(isinstance(child, QuantLayerMixin) for child in module.modules())


def _import_factory(spec: str):
    module_name, factory_name = FACTORY_SPEC.match(spec).groups()
    # Console scripts do not search the current folder; users expect it, as with python -m.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        python_module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 (user code may raise anything while importing)
        raise InputError(f"{spec}: cannot import module {module_name!r} ({type(error).__name__}: {error})") from error
    factory = getattr(python_module, factory_name, None)
    if factory is None:
        raise InputError(f"{spec}: module {module_name!r} has no attribute {factory_name!r}")
    if not callable(factory):
        raise InputError(f"{spec}: {module_name}.{factory_name} is not callable; it must return an nn.Module")
    return factory


def _load_state_dict(module: nn.Module, path: Path, spec: str) -> None:
    if not path.is_file():
        raise InputError(f"state dict file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (torch.load raises many types on a malformed file)
        raise InputError(f"{path}: not a PyTorch state dict file ({_torch_load_reason(error)})") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    # Brevitas activation quantizers add their scale parameters to the state dict only after
    # calibration, so the keys are checked by load_state_dict, which lets them restore those.
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise InputError(f"{path}: state dict does not fit {spec}: {_load_error_summary(str(error))}") from error


def _torch_load_reason(error: Exception) -> str:
    """Condense a torch.load error to one line; weights_only failures keep only the unpickler's reason."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1].strip().split(". ")[0]
    lines = text.strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _load_error_summary(message: str) -> str:
    """Condense torch's multi-line load_state_dict error to one line of missing, unexpected and mismatched keys."""
    parts = []
    for line in message.splitlines():
        line = line.strip()
        if line.startswith(("Missing key(s)", "Unexpected key(s)")):
            label, _, keys = line.partition(":")
            names = re.findall(r'"([^"]+)"', keys)
            parts.append(f"{label.split(' ')[0].lower()} keys {_name_list(names)}")
        elif line.startswith("size mismatch for"):
            parts.append(line.rstrip("."))
    return "; ".join(parts[:4]) or message.strip().splitlines()[0]


def _name_list(names: list[str], count: int = 3) -> str:
    if not names:
        return "none"
    listed = ", ".join(names[:count])
    return f"{len(names)} ({listed}{', ...' if len(names) > count else ''})"


def _input_shape(module: nn.Module, options: SourceOptions, spec: str) -> tuple[int, ...]:
    shape = options.input_shape
    if shape is None:
        attribute = getattr(module, "input_shape", None)
        if attribute is None:
            raise InputError(f"{spec}: the input shape is unknown; pass --input-shape such as 1,3,96,96 "
                             "or give the module an input_shape attribute")
        try:
            shape = tuple(int(size) for size in attribute)
        except (TypeError, ValueError):
            raise InputError(f"{spec}: input_shape attribute {attribute!r} is not a sequence of sizes") from None
    if shape[0] != 1:
        raise InputError(f"{spec}: the input shape {list(shape)} must have batch size 1")
    return shape


def load_module_source(spec: str, options: SourceOptions) -> ModuleModel:
    """Build the module of ``pkg.module:factory``, load its state dict, and quantize it if it is float."""
    factory = _import_factory(spec)
    try:
        module = factory()
    except Exception as error:  # noqa: BLE001 (user code may raise anything)
        raise InputError(f"{spec}: the factory failed ({type(error).__name__}: {error})") from error
    if not isinstance(module, nn.Module):
        raise InputError(f"{spec}: the factory returned {type(module).__name__}, not a torch.nn.Module")
    if options.state_dict is not None:
        _load_state_dict(module, Path(options.state_dict), spec)
    shape = _input_shape(module, options, spec)
    module.eval()

    quantized = is_brevitas_quantized(module)
    if options.calibrate is not None:
        if quantized:
            raise InputError(f"{spec}: the module is already quantized with Brevitas; drop --calibrate")
        module = post_training_quantize(module, shape, Path(options.calibrate), options.weight_bits, options.act_bits)
    elif not quantized:
        raise InputError(f"{spec}: the module has no Brevitas quantizers; pass --calibrate DIR with "
                         "calibration images to quantize it post-training")
    try:
        with torch.no_grad():
            module(torch.zeros(shape))
    except Exception as error:  # noqa: BLE001 (user code may raise anything)
        raise InputError(f"{spec}: the module failed on an input of shape {list(shape)} "
                         f"({type(error).__name__}: {error})") from error
    log.info("loaded %s with input shape %s", spec, list(shape))
    return ModuleModel(module, shape, spec)


def load_calibration_images(folder: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Read every image in folder as uint8 N x H x W x C, resized to the input shape's H x W.

    C is 3 (RGB) or 1 (grayscale), from the input shape N x C x H x W.
    """
    from PIL import Image, UnidentifiedImageError

    if not folder.is_dir():
        raise InputError(f"calibration folder not found: {folder}")
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise InputError(f"--calibrate needs an image input of shape 1,C,H,W with C 1 or 3, got {list(shape)}")
    paths = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"calibration folder {folder} contains no images ({', '.join(IMAGE_SUFFIXES)})")
    mode = "RGB" if shape[1] == 3 else "L"
    height, width = shape[2], shape[3]
    pixels = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image = image.convert(mode)
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as error:
            raise InputError(f"{path}: cannot read the image ({error})") from error
        pixels.append(array.reshape(height, width, shape[1]))
    return np.stack(pixels)


def _quantizer_maps(weight_bits: int, act_bits: int) -> dict:
    """Return Brevitas graph-quantizer layer maps that use power-of-two scales throughout."""
    import brevitas.nn as qnn
    from brevitas.quant import (
        Int8ActPerTensorFixedPoint,
        Int8WeightPerTensorFixedPoint,
        Int32Bias,
        Uint8ActPerTensorFixedPoint,
    )

    def weighted(layer):
        return (layer, {"weight_quant": Int8WeightPerTensorFixedPoint, "weight_bit_width": weight_bits,
                        "bias_quant": Int32Bias, "return_quant_tensor": True})

    def activation(quant, layer=qnn.QuantIdentity):
        return (layer, {"act_quant": quant, "bit_width": act_bits, "return_quant_tensor": True})

    return {
        "compute_layer_map": {nn.Conv2d: weighted(qnn.QuantConv2d), nn.Conv1d: weighted(qnn.QuantConv1d),
                              nn.Linear: weighted(qnn.QuantLinear)},
        "quant_act_map": {nn.ReLU: activation(Uint8ActPerTensorFixedPoint, qnn.QuantReLU)},
        "quant_identity_map": {"signed": activation(Int8ActPerTensorFixedPoint),
                               "unsigned": activation(Uint8ActPerTensorFixedPoint)},
    }


def post_training_quantize(
    module: nn.Module, shape: tuple[int, ...], folder: Path, weight_bits: int, act_bits: int
) -> nn.Module:
    """Quantize a float module with power-of-two scales and calibrate it on the images in folder.

    The model input is pixels / 256 in N x C x H x W order, as for the bundled
    detector, and its quantizer is the detector's constant 8-bit pixel
    quantizer, so each pixel byte is one exact input code. Weights get
    per-tensor power-of-two scales of ``weight_bits`` bits, biases 32-bit
    scales equal to input scale times weight scale, and every ReLU (and any
    layer output without one) a ``act_bits``-bit power-of-two activation
    quantizer whose scale calibration sets (``quantize.ptq.calibrate``).
    """
    import brevitas.nn as qnn
    from brevitas.graph.quantize import preprocess_for_quantize, quantize

    from quantize.ptq import calibrate
    from quantize.quantizers import PixelInputQuant

    for name, bits in (("--weight-bits", weight_bits), ("--act-bits", act_bits)):
        if not 2 <= bits <= 16:
            raise InputError(f"{name} must be between 2 and 16, got {bits}")
    pixels = load_calibration_images(folder, shape)
    try:
        with warnings.catch_warnings():
            # Brevitas 0.13's torch.fx backport uses a pytree API that torch 2.13 deprecates.
            warnings.simplefilter("ignore", FutureWarning)
            graph = preprocess_for_quantize(module, equalize_iters=0)
    except Exception as error:  # noqa: BLE001 (torch.fx raises many types on untraceable code)
        raise InputError(f"cannot trace the module with torch.fx for quantization ({type(error).__name__}: "
                         f"{error})") from error
    graph = quantize(graph, **_quantizer_maps(weight_bits, act_bits))
    # Brevitas 0.13's graph quantizer names the input quantizer '<placeholder>_quant'; make it the pixel quantizer.
    placeholders = [node.name for node in graph.graph.nodes if node.op == "placeholder"]
    for name in placeholders:
        setattr(graph, f"{name}_quant",
                qnn.QuantIdentity(act_quant=PixelInputQuant, bit_width=8, return_quant_tensor=True))
    calibrate(graph, pixels, batch_size=32)
    graph.eval()
    log.info("quantized the float module post-training: W%d A%d, calibrated on %d images from %s",
             weight_bits, act_bits, len(pixels), folder)
    return graph


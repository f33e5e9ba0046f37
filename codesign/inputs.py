"""Test inputs of a project, in both memory orders.

The design reads integer codes in its own (channels-last) order, while
the reference model reads float values in the order of the QONNX model it was
exported as. Every conversion between the two goes through ``to_design_order``
and ``to_reference_order``, which check the shapes.

Inputs come from the project's data set (val images, for detectors) or, for a
model that ships no data, from uniformly random codes inside the input
quantizer's range with a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codesign.errors import InputError
from codesign.reference import QuantParams

RANDOM_SEED = 2024


@dataclass
class TestInputs:
    """One batch of inputs: design-order codes and reference-order float values."""

    codes: np.ndarray
    reference: np.ndarray


def _permutation(tensor: dict) -> tuple[int, ...] | None:
    """Return the axes that turn a reference-order batch into design order, or None if equal.

    ``tensor`` is the input or output entry of codesign.json. Equal shapes do
    not imply equal order (a 1x8x8x8 tensor), so the entry states whether the
    reference model is channels-first.
    """
    reference_shape, design_shape = list(tensor["reference_shape"]), list(tensor["shape"])
    if not tensor.get("reference_channels_first", False) or len(reference_shape) < 3:
        if reference_shape != design_shape:
            raise InputError(f"reference shape {reference_shape} does not match design shape {design_shape}")
        return None
    rank = len(reference_shape)
    channels_last = (0, *range(2, rank), 1)
    if [reference_shape[axis] for axis in channels_last] != design_shape:
        raise InputError(f"cannot map channels-first shape {reference_shape} onto design shape {design_shape}")
    return channels_last


def to_design_order(array: np.ndarray, tensor: dict) -> np.ndarray:
    """Reorder a batch (axis 0 = item) from the reference model's order to the design's."""
    axes = _permutation(tensor)
    return array if axes is None else array.transpose(axes)


def to_reference_order(array: np.ndarray, tensor: dict) -> np.ndarray:
    """Reorder a batch (axis 0 = item) from the design's order to the reference model's."""
    axes = _permutation(tensor)
    return array if axes is None else array.transpose(np.argsort(axes))


def input_quantizer(meta: dict) -> QuantParams:
    spec = meta["input"]["quantizer"]
    return QuantParams(
        scale=np.asarray(spec["scale"], dtype=np.float32),
        zero_point=np.asarray(spec["zero_point"], dtype=np.float32),
        bit_width=spec["bit_width"],
        signed=spec["signed"],
        narrow=spec["narrow"],
        rounding_mode="ROUND",
    )


def pixels_to_model_input(pixels: np.ndarray) -> np.ndarray:
    """Map uint8 N x H x W x 3 pixels to the detector's float NCHW input (value / 256)."""
    return (pixels.astype(np.float32) / 256.0).transpose(0, 3, 1, 2)


def from_pixels(meta: dict, pixels: np.ndarray) -> TestInputs:
    """Return the inputs for detector images."""
    reference = pixels_to_model_input(pixels)
    codes = input_quantizer(meta).quantize_codes(reference)
    design = to_design_order(codes, meta["input"])
    return TestInputs(codes=design, reference=reference)


def random_inputs(meta: dict, count: int, seed: int = RANDOM_SEED) -> TestInputs:
    """Return ``count`` inputs of uniformly random codes within the input quantizer's range."""
    quantizer = input_quantizer(meta)
    rng = np.random.default_rng(seed)
    shape = (count, *meta["input"]["shape"][1:])
    codes = rng.integers(quantizer.code_min, quantizer.code_max, size=shape, endpoint=True)
    values = ((codes - quantizer.zero_point) * quantizer.scale).astype(np.float32)
    reference = to_reference_order(values, meta["input"])
    return TestInputs(codes=codes, reference=np.ascontiguousarray(reference))


def project_inputs(meta: dict, count: int) -> TestInputs:
    """Return the first ``count`` test inputs of a project."""
    spec = meta.get("dataset")
    if spec is None:
        return random_inputs(meta, count)
    from quantize.dataset import DatasetSpec, generate, load_images

    dataset = generate(spec=DatasetSpec(**spec), splits=("val",))
    available = len(dataset.annotations("val")["images"])
    if count > available:
        raise InputError(f"--count {count} exceeds the {available} val images of the data set")
    pixels, _ = load_images(dataset, "val", count)
    return from_pixels(meta, pixels)

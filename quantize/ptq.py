"""Post-training quantization: re-quantize a float or QAT checkpoint at new bit-widths.

The weights and biases of a checkpoint are loaded into a ``TinyYolo`` built at
the requested bit-widths. Brevitas calibration mode then initializes its
activation quantizers. The model runs in float on a few hundred train images,
and each ``QuantReLU`` takes its power-of-two scale from the 99.999th
percentile of its input, the statistic of ``Uint8ActPerTensorFixedPoint`` in
Brevitas 0.13. For a QAT checkpoint, a calibrated threshold above the one that
QAT learned is lowered to it (``limit_thresholds``). Weight scales need no
data, because the power-of-two weight quantizer derives them from each
tensor's maximum. An optional short QAT fine-tune follows.

With ``DetectorConfig(scaling="float")`` the same steps re-quantize a
checkpoint with Brevitas's default float-scale quantizers; ``python -m
quantize.ptq --quantizers float --out FILE`` does it for the bundled detector.
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import brevitas.nn as qnn
import numpy as np
import torch
from brevitas.graph.calibrate import calibration_mode

from quantize.dataset import DatasetSpec
from quantize.detector import OUTPUTS_PER_CLASS_FREE, DetectorConfig, TinyYolo, load_checkpoint, save_checkpoint
from quantize.quantizers import FLOAT, SCALINGS
from quantize.train import augment, build_targets, detection_loss, to_model_input

log = logging.getLogger(__name__)

# Calibration and fine-tuning read the first images of this train split. The
# generator writes images in order from one random stream, so they equal the
# first images of every larger train split with the same seed, such as the one
# that codesign train uses.
PTQ_TRAIN_SPEC = DatasetSpec(train_images=2048)

_FEATURE_KEY = re.compile(r"^features\.(\d+)\.(weight|bias)$")


@dataclass(frozen=True)
class PtqSettings:
    """Calibration and fine-tune settings of ``post_training_quantize``."""

    calibration_images: int = 256
    calibration_batch_size: int = 64
    finetune_steps: int = 0
    finetune_batch_size: int = 32
    finetune_learning_rate: float = 5e-4
    keep_qat_thresholds: bool = True
    seed: int = 0


@dataclass(frozen=True)
class FloatWeights:
    """Float weights and biases of a detector, with the architecture they belong to.

    ``kind`` is ``"qat"`` for a codesign QAT checkpoint and ``"float"`` for a
    plain state dict. ``act_thresholds`` maps a layer name (``conv0`` ...) to
    the clipping threshold that QAT learned for its ReLU output, which is the
    scale times 2**bits. A float checkpoint has none. ``metrics`` are the
    checkpoint's stored metrics, if any.
    """

    config: DetectorConfig
    state: dict[str, torch.Tensor]
    source: str
    kind: str
    act_thresholds: dict[str, float] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


def weights_from_module(module: TinyYolo, source: str, metrics: dict | None = None) -> FloatWeights:
    """Take the float weights, biases and activation thresholds of a loaded QAT detector."""
    module.eval()
    thresholds = {}
    with torch.no_grad():
        for name, relu in _activation_quantizers(module).items():
            thresholds[name] = float(relu.act_quant.scale()) * 2.0 ** float(relu.act_quant.bit_width())
    return FloatWeights(
        config=module.config,
        state=_weight_tensors(module.state_dict()),
        source=source,
        kind="qat",
        act_thresholds=thresholds,
        metrics=dict(metrics or {}),
    )


def load_float_weights(path: str | Path) -> FloatWeights:
    """Read a codesign checkpoint or a plain float state dict of the detector.

    A codesign checkpoint (``{"config", "state_dict", "metrics"}``) keeps its
    configuration. For a plain state dict, or ``{"state_dict": ...}`` without a
    config, the channel counts and class count are read from the weight shapes,
    and image size and anchor keep the ``DetectorConfig`` defaults.
    Raises ValueError when the file is not a state dict of this detector family.
    """
    data = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(data, dict) and "config" in data and "state_dict" in data:
        module, metrics = load_checkpoint(path)
        return weights_from_module(module, str(path), metrics)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(value, torch.Tensor) for value in data.values()):
        raise ValueError("expected a codesign checkpoint or a state dict of tensors")
    state = _weight_tensors(data)
    config = infer_config(state)
    _check_shapes(config, state)
    return FloatWeights(config, state, str(path), "float", {})


def infer_config(state: dict[str, torch.Tensor]) -> DetectorConfig:
    """Derive channel and class counts from the convolution weights of a ``TinyYolo`` state dict."""
    convs = sorted(
        (int(match.group(1)), tensor)
        for key, tensor in state.items()
        if (match := _FEATURE_KEY.match(key)) and match.group(2) == "weight"
    )
    if len(convs) < 2 or "head.weight" not in state:
        raise ValueError("the state dict has no features.N.weight convolutions and head.weight of a TinyYolo")
    # TinyYolo places a convolution every 3 modules: conv, ReLU, max pooling.
    indices = [index for index, _ in convs]
    if indices != [3 * position for position in range(len(convs))]:
        raise ValueError(f"convolutions at features indices {indices}; a TinyYolo has them at 0, 3, 6, ...")
    channels = tuple(int(tensor.shape[0]) for _, tensor in convs[:-1])
    num_classes = int(state["head.weight"].shape[0]) - OUTPUTS_PER_CLASS_FREE
    if num_classes < 1:
        raise ValueError(f"head.weight has {state['head.weight'].shape[0]} outputs; a detector needs more than 5")
    return DetectorConfig(channels=channels, final_channels=int(convs[-1][1].shape[0]), num_classes=num_classes)


def _weight_tensors(state: dict) -> dict[str, torch.Tensor]:
    """Keep the convolution weights and biases, dropping quantizer parameters such as scales."""
    return {
        key: tensor.detach().clone().float()
        for key, tensor in state.items()
        if key.endswith((".weight", ".bias")) and "quant" not in key
    }


def _check_shapes(config: DetectorConfig, state: dict[str, torch.Tensor]) -> None:
    expected = {key: tuple(value.shape) for key, value in _weight_tensors(TinyYolo(config).state_dict()).items()}
    got = {key: tuple(value.shape) for key, value in state.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))
        wrong = sorted(key for key in set(expected) & set(got) if expected[key] != got[key])
        extra = sorted(set(got) - set(expected))
        raise ValueError(
            f"state dict does not match the detector: missing {missing or 'none'}, "
            f"wrong shape {wrong or 'none'}, unexpected {extra or 'none'}"
        )


def with_bits(
    config: DetectorConfig,
    weight_bits: int,
    act_bits: int,
    layer_weight_bits: dict[str, int] | None = None,
    layer_act_bits: dict[str, int] | None = None,
) -> DetectorConfig:
    """Return the architecture of config at new bit-widths; the per-layer maps replace the old ones."""
    return replace(
        config,
        weight_bits=weight_bits,
        act_bits=act_bits,
        layer_weight_bits=dict(layer_weight_bits or {}),
        layer_act_bits=dict(layer_act_bits or {}),
    )


def post_training_quantize(
    weights: FloatWeights,
    config: DetectorConfig,
    train_pixels: np.ndarray,
    settings: PtqSettings = PtqSettings(),
    train_coco: dict | None = None,
) -> TinyYolo:
    """Build a detector at config's bit-widths from float weights, calibrate it, and optionally fine-tune it.

    ``train_pixels`` are uint8 N x H x W x 3 train images. Calibration reads the
    first ``settings.calibration_images`` of them, and the fine-tune samples
    from all of them, which needs their COCO annotations in ``train_coco``.
    The result is in eval mode. The same inputs always give the same model,
    because calibration is deterministic on the CPU and the fine-tune is seeded.
    """
    if config.channels != weights.config.channels or config.num_classes != weights.config.num_classes:
        raise ValueError("config describes another architecture than the weights")
    if settings.calibration_images < 1:
        raise ValueError(f"calibration needs at least 1 image, got {settings.calibration_images}")
    if settings.finetune_steps < 0:
        raise ValueError(f"finetune_steps must be at least 0, got {settings.finetune_steps}")
    model = TinyYolo(config)
    result = model.load_state_dict(weights.state, strict=False)
    # Only the activation scales may be missing: calibration initializes them.
    unexpected_missing = [key for key in result.missing_keys if "act_quant" not in key]
    if unexpected_missing or result.unexpected_keys:
        raise ValueError(f"weights do not fit the detector: missing {unexpected_missing}, "
                         f"unexpected {result.unexpected_keys}")

    calibrate(model, train_pixels[: settings.calibration_images], settings.calibration_batch_size)
    if settings.keep_qat_thresholds:
        limit_thresholds(model, weights.act_thresholds)
    if settings.finetune_steps:
        if train_coco is None:
            raise ValueError("fine-tuning needs the COCO annotations of train_pixels")
        finetune(model, train_pixels, train_coco, settings)
    model.eval()
    return model


def calibrate(model: TinyYolo, pixels: np.ndarray, batch_size: int = 64) -> None:
    """Initialize every activation scale from float statistics over pixels (Brevitas calibration mode)."""
    if len(pixels) == 0:
        raise ValueError("calibration needs at least 1 image")
    model.eval()
    with torch.no_grad(), calibration_mode(model):
        for start in range(0, len(pixels), batch_size):
            model(to_model_input(pixels[start : start + batch_size]))


def limit_thresholds(model: TinyYolo, thresholds: dict[str, float]) -> None:
    """Lower each calibrated activation threshold to the QAT threshold of the same layer.

    A QAT network learns to rely on its ReLU clipping, so a calibrated range
    that is wider than the learned one changes what the later layers see. The
    Brevitas power-of-two activation quantizer stores log2 of the threshold in
    ``scaling_impl.value`` and uses scale = 2**ceil(value) / 2**bits, so the
    clipping point stays the same at every bit-width. The float activation
    quantizer (``Uint8ActPerTensorFloat``) stores its largest output, scale *
    (2**bits - 1), in ``scaling_impl.value``.
    """
    quantizers = _activation_quantizers(model)
    with torch.no_grad():
        for name, threshold in thresholds.items():
            relu = quantizers.get(name)
            if relu is None:
                continue
            scaling = relu.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl
            if model.config.scaling == FLOAT:
                steps = 2.0 ** float(relu.act_quant.bit_width())
                largest = threshold * (steps - 1) / steps
                if float(scaling.value) > largest:
                    log.debug("%s: largest output %.4g lowered to the QAT one %.4g", name, float(scaling.value), largest)
                    scaling.value.fill_(largest)
                continue
            calibrated = float(relu.act_quant.scale()) * 2.0 ** float(relu.act_quant.bit_width())
            if calibrated > threshold:
                scaling.value.fill_(float(np.log2(threshold)))
                log.debug("%s: threshold %.4g lowered to the QAT threshold %.4g", name, calibrated, threshold)


def _activation_quantizers(model: TinyYolo) -> dict[str, qnn.QuantReLU]:
    """Map each convolution name (``conv0`` ...) to the ``QuantReLU`` that follows it."""
    quantizers = {}
    convolutions = 0
    for module in model.features:
        if isinstance(module, qnn.QuantConv2d):
            convolutions += 1
        elif isinstance(module, qnn.QuantReLU):
            quantizers[f"conv{convolutions - 1}"] = module
    return quantizers


def finetune(model: TinyYolo, pixels: np.ndarray, coco: dict, settings: PtqSettings) -> float:
    """Run ``settings.finetune_steps`` QAT steps with a cosine-decayed learning rate; return the last loss."""
    generator = torch.Generator().manual_seed(settings.seed)
    inputs = to_model_input(pixels)
    targets = torch.from_numpy(build_targets(coco, len(pixels), model.config))
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.finetune_learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=settings.finetune_steps)
    model.train()
    loss = torch.zeros(())
    for _ in range(settings.finetune_steps):
        index = torch.randint(len(inputs), (settings.finetune_batch_size,), generator=generator)
        loss = detection_loss(model(augment(inputs[index], generator)), targets[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    model.eval()
    log.debug("fine-tuned %d steps, last loss %.3f", settings.finetune_steps, loss.item())
    return float(loss.item())


def requantize_checkpoint(
    source: str | Path | None,
    out: Path,
    scaling: str,
    settings: PtqSettings = PtqSettings(),
    val_images: int = 1000,
) -> dict:
    """Re-quantize a checkpoint's weights with the quantizers of ``scaling``; save it with its val mAP@0.5.

    Calibration reads the first ``settings.calibration_images`` images of the
    generated PTQ train split; nothing is downloaded. Returns the metrics
    stored in the new checkpoint.
    """
    from codesign.quantize import BUNDLED_CHECKPOINT
    from quantize.dataset import DatasetSpec, generate, load_images
    from quantize.train import evaluate_map

    path = Path(source) if source is not None else BUNDLED_CHECKPOINT
    weights = load_float_weights(path)
    config = replace(weights.config, scaling=scaling)
    train_count = settings.calibration_images if settings.finetune_steps == 0 else None
    train_pixels, train_coco = load_images(generate(spec=PTQ_TRAIN_SPEC, splits=("train",)), "train", train_count)
    model = post_training_quantize(weights, config, train_pixels, settings, train_coco)
    val_pixels, val_coco = load_images(generate(spec=DatasetSpec(), splits=("val",)), "val", val_images)
    metrics = {
        "val_map50": float(evaluate_map(model, val_pixels, val_coco)),
        "val_images": int(len(val_pixels)),
        "source": str(path),
        "source_val_map50": weights.metrics.get("val_map50"),
        "ptq_calibration_images": settings.calibration_images,
        "ptq_finetune_steps": settings.finetune_steps,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, out, metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m quantize.ptq",
        description="Re-quantize a detector checkpoint by post-training quantization.",
    )
    parser.add_argument("--checkpoint", default=None, help="codesign checkpoint or float state dict (default: bundled)")
    parser.add_argument("--quantizers", choices=SCALINGS, default=FLOAT,
                        help="weight and activation quantizers: power_of_two or float (Brevitas defaults)")
    parser.add_argument("--calibration-images", type=int, default=PtqSettings.calibration_images,
                        help="generated train images for activation calibration")
    parser.add_argument("--val-images", type=int, default=1000, help="val images for mAP@0.5")
    parser.add_argument("--out", type=Path, required=True, help="output checkpoint (.pt)")
    args = parser.parse_args(argv)
    settings = PtqSettings(calibration_images=args.calibration_images)
    metrics = requantize_checkpoint(args.checkpoint, args.out, args.quantizers, settings, args.val_images)
    print(f"wrote {args.out}: val mAP@0.5 {metrics['val_map50']:.4f} on {metrics['val_images']} images "
          f"(source {metrics['source_val_map50']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
